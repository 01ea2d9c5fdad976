"""The checkpoint store on disk.

Layout::

    <root>/LATEST            "7\\n": the version to serve (rollback moves it back)
    <root>/v00000007/        one directory per version: weights + manifest.json
    <root>/.tmp-*            versions being written (never read; swept on start)
    <root>/.lock             flock held while LATEST is checked and moved (publish, rollback)
    <root>/pseudonymise.key  generated only when STREAMTUNE_PSEUDONYMISE_KEY is unset (0600)
    <root>/forget/           requests to forget a user, by pseudonym (streamtune.privacy)

A version directory either exists complete or not at all: it is assembled under a temporary
name, every file and the directory are fsynced, and only then is it renamed into place.
Nothing in a version is trusted before :meth:`CheckpointStore.verify` checked it: the manifest
must be a small regular file (not a link, not a FIFO) naming plain files, and each file must be
a regular file of the listed size and sha256. Only JSON and safetensors are ever parsed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from safetensors import SafetensorError

from streamtune.checkpoints.durable_files import fsync_directory, hash_and_fsync, write_durably
from streamtune.checkpoints.manifest import MANIFEST_FILE, Manifest, file_sha256
from streamtune.checkpoints.protocol import CheckedOutVersion, ManifestBuilder, PayloadWriter
from streamtune.checkpoints.retention import DeferredRemoval, needed_versions
from streamtune.errors import CheckpointError, PublishError

logger = logging.getLogger(__name__)

LATEST_FILE = "LATEST"
LOCK_FILE = ".lock"
_VERSION_DIR = re.compile(r"^v(\d{8,})$")
_MAX_LATEST_BYTES = 64
_TEMP_PREFIX = ".tmp-"
# A manifest is a few KiB; anything much larger is not one (and is not read into memory).
MAX_MANIFEST_BYTES = 1 << 20

__all__ = ["CheckpointStore", "ManifestBuilder", "PayloadWriter", "version_dirname"]


def version_dirname(version: int) -> str:
    return f"v{version:08d}"


class CheckpointStore:
    """Versions of one model lineage in a directory shared by the trainer and servers."""

    def __init__(self, root: Path, keep_versions: int = 10) -> None:
        self.root = Path(root)
        self.keep_versions = keep_versions
        # Manifests retention has read, with their file's identity (see _known_manifest).
        self._manifests: dict[int, tuple[tuple[int, int], Manifest]] = {}
        self._removal = DeferredRemoval()

    @property
    def location(self) -> str:
        return str(self.root)

    # --- reading ---------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Complete versions (a directory, not a link, with a manifest), oldest first; listed with
        every publish, so the entry's type comes with the listing (1.9 → 0.6 ms for 104 versions)."""
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as entries:
            complete = [
                version
                for entry in entries
                if (version := _version_of(entry.name)) is not None
                and entry.is_dir(follow_symlinks=False)
                and _has_manifest(entry.path)
            ]
        return sorted(complete)

    def latest_version(self) -> int | None:
        """The version LATEST points to; the newest complete one if LATEST is absent or bad."""
        try:
            pointed = int(_read_regular_file(self.root / LATEST_FILE, _MAX_LATEST_BYTES).decode().strip())
        except (OSError, ValueError, CheckpointError):
            pointed = None
        if pointed is not None and pointed >= 1 and _is_complete(self.path_of(pointed)):
            return pointed
        versions = self.versions()
        if pointed is not None:
            logger.warning("LATEST names version %s which is not complete; ignoring it", pointed)
        return versions[-1] if versions else None

    def _numbered_entries(self) -> list[tuple[int, Path]]:
        """Every entry named like a version, complete or not (canonical names only)."""
        if not self.root.is_dir():
            return []
        return [(version, entry) for entry in self.root.iterdir() if (version := _version_of(entry.name)) is not None]

    def _next_version(self) -> int:
        """One more than any version-like name: a stray file or a damaged directory keeps its
        number, so a publish never collides with it."""
        return max((version for version, _ in self._numbered_entries()), default=0) + 1

    def path_of(self, version: int) -> Path:
        return self.root / version_dirname(version)

    def read_manifest(self, version: int) -> Manifest:
        path = self.path_of(version) / MANIFEST_FILE
        try:
            raw = _read_regular_file(path, MAX_MANIFEST_BYTES)
        except OSError as error:
            raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
        manifest = Manifest.from_json(raw)
        if manifest.version != version:
            raise CheckpointError(f"{path} claims version {manifest.version}, expected {version}")
        return manifest

    def verify(self, version: int, *, skip: Collection[str] = ()) -> Manifest:
        """The manifest of ``version`` after checking every file's size and sha256 (but ``skip``)."""
        directory = self.path_of(version)
        if directory.is_symlink() or directory.resolve().parent != self.root.resolve():
            raise CheckpointError(f"{directory} points outside the store")
        manifest = self.read_manifest(version)
        for name, entry in manifest.files_except(skip):
            path = directory / name
            if path.is_symlink() or not path.is_file():
                raise CheckpointError(f"version {version}: file {name} is missing")
            size = path.stat().st_size
            if size != entry.bytes:
                raise CheckpointError(f"version {version}: {name} has {size} bytes, manifest says {entry.bytes}")
            if file_sha256(path) != entry.sha256:
                raise CheckpointError(f"version {version}: {name} does not match its sha256")
        return manifest

    def checkout(self, version: int, *, skip: Collection[str] = ()) -> CheckedOutVersion:
        """``version`` verified (but ``skip``) where it lies: the store is a local directory."""
        return CheckedOutVersion(self.verify(version, skip=skip), self.path_of(version))

    # --- writing ---------------------------------------------------------------------------
    def publish(self, write_payload: PayloadWriter, build_manifest: ManifestBuilder, *, prune: bool = True) -> Manifest:
        """Write a new version durably and point LATEST at it.

        Steps, in this order (a crash anywhere leaves the previous version intact):
        1. allocate the next version number;
        2. ``write_payload`` writes the weights into a fresh temporary directory;
        3. every file is hashed and fsynced;
        4. ``manifest.json`` is written last and fsynced, then the directory itself;
        5. the directory is renamed to its final name and the store root fsynced;
        6. LATEST is replaced atomically (temp file, fsync, rename);
        7. versions beyond the retention are removed (``prune=False``: the caller calls :meth:`prune`).

        A write that fails in steps 2–5 (disk full, I/O error) removes the temporary directory and
        raises :class:`PublishError`; LATEST and the versions already there are untouched.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        version = self._next_version()  # Step 1
        temp = self.root / f"{_TEMP_PREFIX}{version_dirname(version)}-{uuid.uuid4().hex[:8]}"
        try:
            temp.mkdir()
            write_payload(temp)  # Step 2
            files = hash_and_fsync(sorted(temp.iterdir()))  # Step 3
            manifest = build_manifest(version, files)
            manifest.check()
            write_durably(temp / MANIFEST_FILE, manifest.to_json())  # Step 4
            fsync_directory(temp)
            os.rename(temp, self.path_of(version))  # Step 5
            fsync_directory(self.root)
        except BaseException as error:
            shutil.rmtree(temp, ignore_errors=True)
            # safetensors reports a full disk as its own SafetensorError, not as an OSError.
            if isinstance(error, (OSError, SafetensorError)):
                raise PublishError(f"could not write version {version}: {error}") from error
            raise
        self.set_latest(version)  # Step 6
        if prune:
            self.prune(version)  # Step 7
        return manifest

    def set_latest(self, version: int) -> None:
        """Point LATEST at an existing complete version (publish, rollback)."""
        if not (self.path_of(version) / MANIFEST_FILE).is_file():
            raise CheckpointError(f"version {version} does not exist in {self.root}")
        temp = self.root / f"{_TEMP_PREFIX}{LATEST_FILE}-{uuid.uuid4().hex[:8]}"
        try:
            write_durably(temp, f"{version}\n".encode())
            os.replace(temp, self.root / LATEST_FILE)
            fsync_directory(self.root)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise PublishError(f"could not update LATEST to {version}: {error}") from error

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's LATEST lock (an exclusive ``flock``) across a check and a move.

        The trainer publishes under it after checking that LATEST still names its parent, and a
        rollback moves LATEST under it, so a rollback can never be overwritten by a publish that
        was already under way. The kernel releases the lock if the holder dies.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def rollback(self, version: int) -> int | None:
        """Serve ``version`` again: verify it, then point LATEST at it; newer versions are kept.

        Returns the version LATEST named before. A running trainer notices LATEST moved and
        continues from ``version`` (its new versions are children of it).
        """
        self.verify(version)
        with self.lock():
            previous = self.latest_version()
            self.set_latest(version)
        logger.warning("rolled back: LATEST %s -> %d", previous, version)
        return previous

    def sweep_temporary(self) -> int:
        """Remove leftovers of writes interrupted by a crash; only one writer may call this."""
        if not self.root.is_dir():
            return 0
        stale = [entry for entry in self.root.iterdir() if entry.name.startswith(_TEMP_PREFIX)]
        for entry in stale:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        return len(stale)

    def prune(self, latest: int) -> None:
        """Take out versions beyond the retention, never ``latest``, what LATEST names, nor what a
        retained delta needs; renamed at once, their files deleted a few per call (``DeferredRemoval``)."""
        versions = self.versions()
        cut = max(0, len(versions) - self.keep_versions)
        protected = {latest, self.latest_version()} | needed_versions(versions[cut:], self._known_manifest)
        for version in versions[:cut]:
            if version in protected:
                continue
            self._manifests.pop(version, None)
            doomed = self.root / f"{_TEMP_PREFIX}delete-{version_dirname(version)}"
            try:
                os.rename(self.path_of(version), doomed)
            except OSError as error:
                logger.warning("could not remove old version %d: %s", version, error)
            else:
                self._removal.add(doomed)
        self._removal.remove_some()

    def remove_pruned(self) -> None:
        """Delete now the files of every version retention took out (``forget``: no copy left)."""
        self._removal.remove_all(self.root.glob(f"{_TEMP_PREFIX}delete-*"))

    def _known_manifest(self, version: int) -> Manifest:
        """``version``'s manifest, parsed again only when its file changed (inode or mtime; as
        the S3 store keys its own by ETag): retention runs with every publish, and the oldest
        retained delta's chain reaches back to its snapshot, up to ``snapshot_every`` versions."""
        try:
            status = (self.path_of(version) / MANIFEST_FILE).stat()
        except OSError as error:
            raise CheckpointError(f"version {version} has no readable manifest: {error}") from error
        stamp = (status.st_ino, status.st_mtime_ns)
        known = self._manifests.get(version)
        if known is None or known[0] != stamp:
            known = self._manifests[version] = (stamp, self.read_manifest(version))
        return known[1]


def _version_of(name: str) -> int | None:
    """The version a directory name stands for (canonical names only), else None."""
    match = _VERSION_DIR.match(name)
    return int(match.group(1)) if match and name == version_dirname(int(match.group(1))) else None


def _is_complete(directory: Path) -> bool:
    """A real directory (not a link) holding a manifest: a version, not yet verified."""
    return directory.is_dir() and not directory.is_symlink() and _has_manifest(directory)


def _has_manifest(directory: str | os.PathLike[str]) -> bool:
    return os.path.isfile(os.path.join(directory, MANIFEST_FILE))


def _read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file that is not a symlink (a FIFO would block a reader forever, a
    link could lead out of the store); larger than ``max_bytes`` is refused unread."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise CheckpointError(f"{path} is not a regular file")
        if status.st_size > max_bytes:
            raise CheckpointError(f"{path} has {status.st_size} bytes, more than {max_bytes}")
        return handle.read(max_bytes + 1)
