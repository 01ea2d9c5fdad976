"""Local copies of remote versions, for loaders that read files: whole, verified, bounded.

The cache is a directory store of its own (same layout, same verification): a version is
downloaded into a temporary directory, every file checked against the manifest's size and
sha256 as it arrives, the manifest written last, and the directory renamed into place. A cached
copy is used again only while its manifest is byte-for-byte the remote one and it verifies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO

from streamtune.checkpoints.manifest import MANIFEST_FILE, FileEntry, Manifest
from streamtune.checkpoints.protocol import CheckedOutVersion
from streamtune.checkpoints.store import CheckpointStore, version_dirname
from streamtune.errors import CheckpointError

logger = logging.getLogger(__name__)

# Copies one file of a version into a sink; returns (sha256, bytes), reading at most max + 1.
FileFetcher = Callable[[str, IO[bytes], int], tuple[str, int]]


class CheckoutCache:
    """Verified local copies of up to ``keep_versions`` versions under ``root``."""

    def __init__(self, root: Path, keep_versions: int) -> None:
        self.store = CheckpointStore(root, keep_versions)
        self.keep_versions = keep_versions

    def checkout(
        self, manifest: Manifest, raw_manifest: bytes, fetch: FileFetcher, skip: Collection[str] = ()
    ) -> CheckedOutVersion:
        """The cached copy of ``manifest``'s version (but the files in ``skip``), downloaded
        through ``fetch`` unless a cached copy of the same manifest verifies. Serialised across
        threads and processes (flock)."""
        version = manifest.version
        cached = self.store.path_of(version)
        with self.store.lock():
            if (cached / MANIFEST_FILE).is_file() and (cached / MANIFEST_FILE).read_bytes() == raw_manifest:
                with contextlib.suppress(CheckpointError):
                    return CheckedOutVersion(self.store.verify(version, skip=skip), cached)
                logger.warning("cached copy of version %d does not verify; downloading it again", version)
            self._download(manifest, raw_manifest, fetch, skip)
            self._evict(keep=version)
            return CheckedOutVersion(self.store.verify(version, skip=skip), cached)

    def versions(self) -> list[int]:
        return self.store.versions()

    def sweep_temporary(self) -> int:
        return self.store.sweep_temporary()

    def _download(self, manifest: Manifest, raw_manifest: bytes, fetch: FileFetcher, skip: Collection[str]) -> None:
        """Files first, manifest last, then one rename: a version is cached whole or not at all."""
        version = manifest.version
        self.store.root.mkdir(parents=True, exist_ok=True)
        temp = self.store.root / f".tmp-{version_dirname(version)}-{uuid.uuid4().hex[:8]}"
        try:
            temp.mkdir()
            for name, entry in manifest.files_except(skip):
                with open(temp / name, "wb") as sink:
                    check_file(version, name, entry, *fetch(name, sink, entry.bytes))
            (temp / MANIFEST_FILE).write_bytes(raw_manifest)
            target = self.store.path_of(version)
            if target.exists():  # a copy that no longer verifies
                remove_directory(target)
            os.rename(temp, target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def _evict(self, keep: int) -> None:
        """Keep ``keep`` and the newest other cached versions, up to the retention in all."""
        cached = [version for version in self.store.versions() if version != keep]
        for version in cached[: max(0, len(cached) - (self.keep_versions - 1))]:
            remove_directory(self.store.path_of(version))


def check_file(version: int, name: str, entry: FileEntry, sha256: str, size: int) -> None:
    """Refuse a file whose size or sha256 is not the manifest's."""
    if size != entry.bytes:
        raise CheckpointError(f"version {version}: {name} is not of the {entry.bytes} bytes its manifest says")
    if sha256 != entry.sha256:
        raise CheckpointError(f"version {version}: {name} does not match its sha256")


def remove_directory(path: Path) -> None:
    """Rename first, so a half-deleted directory is never taken for a version."""
    doomed = path.with_name(f".tmp-delete-{path.name}-{uuid.uuid4().hex[:8]}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
