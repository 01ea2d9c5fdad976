"""Files written so that they survive a crash: fsynced before anyone relies on them.

The checkpoint store's publish protocol (:mod:`streamtune.checkpoints.store`) is built on these.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streamtune.checkpoints.manifest import FileEntry, file_sha256


def _fsync_file(path: Path) -> int:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
        return os.fstat(handle.fileno()).st_size


def _entry(path: Path) -> FileEntry:
    return FileEntry(sha256=file_sha256(path), bytes=_fsync_file(path))


class _FileThreads:
    """A few threads for file work, started on first use; a forked child starts its own (the
    parent's threads do not exist there, and a pool that believes they do never runs a task)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="streamtune-fsync")
            return self._pool

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._pool = None


_FILE_THREADS = _FileThreads()
os.register_at_fork(after_in_child=_FILE_THREADS.forget)


def hash_and_fsync(paths: list[Path]) -> dict[str, FileEntry]:
    """Each file's sha256 and size, once it is on disk. The files are hashed and fsynced at once
    on a few threads (both release the GIL): the file system then commits their data together,
    which took six small files from 4.3 to 2.0 ms here (medians of 40), against one after another."""
    entries = _FILE_THREADS.pool().map(_entry, paths)
    return {path.name: entry for path, entry in zip(paths, entries, strict=True)}


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
