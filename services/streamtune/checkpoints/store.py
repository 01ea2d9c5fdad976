"""The checkpoint store on disk.

Layout::

    <root>/LATEST            "7\\n": the version to serve (rollback moves it back)
    <root>/v00000007/        one directory per version: weights + manifest.json
    <root>/.tmp-*            versions being written (never read; swept on start)

A version directory either exists complete or not at all: it is assembled under a temporary
name, every file and the directory are fsynced, and only then is it renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from streamtune.checkpoints.manifest import MANIFEST_FILE, FileEntry, Manifest
from streamtune.errors import CheckpointError, PublishError

logger = logging.getLogger(__name__)

LATEST_FILE = "LATEST"
_VERSION_DIR = re.compile(r"^v(\d{8})$")
_TEMP_PREFIX = ".tmp-"

ManifestBuilder = Callable[[int, dict[str, FileEntry]], Manifest]
PayloadWriter = Callable[[Path], None]


def version_dirname(version: int) -> str:
    return f"v{version:08d}"


class CheckpointStore:
    """Versions of one model lineage in a directory shared by the trainer and servers."""

    def __init__(self, root: Path, keep_versions: int = 10) -> None:
        self.root = Path(root)
        self.keep_versions = keep_versions

    # --- reading ---------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Complete versions (directory with a manifest), oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            match = _VERSION_DIR.match(entry.name)
            if match and entry.is_dir() and not entry.is_symlink() and (entry / MANIFEST_FILE).is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def latest_version(self) -> int | None:
        """The version LATEST points to; the newest complete one if LATEST is absent or bad."""
        try:
            pointed = int((self.root / LATEST_FILE).read_text().strip())
        except (OSError, ValueError):
            pointed = None
        if pointed is not None and (self.path_of(pointed) / MANIFEST_FILE).is_file():
            return pointed
        versions = self.versions()
        if pointed is not None:
            logger.warning("LATEST names version %s which is not complete; ignoring it", pointed)
        return versions[-1] if versions else None

    def path_of(self, version: int) -> Path:
        return self.root / version_dirname(version)

    def read_manifest(self, version: int) -> Manifest:
        path = self.path_of(version) / MANIFEST_FILE
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
        manifest = Manifest.from_json(raw)
        if manifest.version != version:
            raise CheckpointError(f"{path} claims version {manifest.version}, expected {version}")
        return manifest

    def verify(self, version: int) -> Manifest:
        """The manifest of ``version`` after checking every file's size and sha256."""
        directory = self.path_of(version)
        if directory.is_symlink() or directory.resolve().parent != self.root.resolve():
            raise CheckpointError(f"{directory} points outside the store")
        manifest = self.read_manifest(version)
        for name, entry in manifest.files.items():
            path = directory / name
            if path.is_symlink() or not path.is_file():
                raise CheckpointError(f"version {version}: file {name} is missing")
            size = path.stat().st_size
            if size != entry.bytes:
                raise CheckpointError(f"version {version}: {name} has {size} bytes, manifest says {entry.bytes}")
            if _sha256(path) != entry.sha256:
                raise CheckpointError(f"version {version}: {name} does not match its sha256")
        return manifest

    # --- writing ---------------------------------------------------------------------------
    def publish(self, write_payload: PayloadWriter, build_manifest: ManifestBuilder) -> Manifest:
        """Write a new version durably and point LATEST at it.

        Steps, in this order (a crash anywhere leaves the previous version intact):
        1. allocate the next version number;
        2. ``write_payload`` writes the weights into a fresh temporary directory;
        3. every file is hashed and fsynced;
        4. ``manifest.json`` is written last and fsynced, then the directory itself;
        5. the directory is renamed to its final name and the store root fsynced;
        6. LATEST is replaced atomically (temp file, fsync, rename);
        7. versions beyond the retention are removed.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        version = (max(self.versions(), default=0)) + 1  # Step 1
        temp = self.root / f"{_TEMP_PREFIX}{version_dirname(version)}-{uuid.uuid4().hex[:8]}"
        try:
            temp.mkdir()
            write_payload(temp)  # Step 2
            files = {  # Step 3
                path.name: FileEntry(sha256=_sha256(path), bytes=_fsync_file(path))
                for path in sorted(temp.iterdir())
            }
            manifest = build_manifest(version, files)
            manifest.check()
            _write_durably(temp / MANIFEST_FILE, manifest.to_json())  # Step 4
            _fsync_directory(temp)
            os.rename(temp, self.path_of(version))  # Step 5
            _fsync_directory(self.root)
        except CheckpointError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        except OSError as error:
            shutil.rmtree(temp, ignore_errors=True)
            raise PublishError(f"could not write version {version}: {error}") from error
        self.set_latest(version)  # Step 6
        self._prune()  # Step 7
        return manifest

    def set_latest(self, version: int) -> None:
        """Point LATEST at an existing complete version (publish, rollback)."""
        if not (self.path_of(version) / MANIFEST_FILE).is_file():
            raise CheckpointError(f"version {version} does not exist in {self.root}")
        temp = self.root / f"{_TEMP_PREFIX}{LATEST_FILE}-{uuid.uuid4().hex[:8]}"
        try:
            _write_durably(temp, f"{version}\n".encode())
            os.replace(temp, self.root / LATEST_FILE)
            _fsync_directory(self.root)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise PublishError(f"could not update LATEST to {version}: {error}") from error

    def sweep_temporary(self) -> int:
        """Remove leftovers of writes interrupted by a crash; only one writer may call this."""
        if not self.root.is_dir():
            return 0
        stale = [entry for entry in self.root.iterdir() if entry.name.startswith(_TEMP_PREFIX)]
        for entry in stale:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        return len(stale)

    def _prune(self) -> None:
        versions = self.versions()
        protected = {self.latest_version()}
        for version in versions[: max(0, len(versions) - self.keep_versions)]:
            if version in protected:
                continue
            # Rename first so a half-deleted directory is never taken for a version.
            doomed = self.root / f"{_TEMP_PREFIX}delete-{version_dirname(version)}"
            try:
                os.rename(self.path_of(version), doomed)
                shutil.rmtree(doomed)
            except OSError as error:
                logger.warning("could not remove old version %d: %s", version, error)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> int:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
        return os.fstat(handle.fileno()).st_size


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
