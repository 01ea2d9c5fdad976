"""What every checkpoint store backend offers: the seam between the store and its users.

Two backends implement it: :class:`~streamtune.checkpoints.store.CheckpointStore` (a directory:
temp dir, fsync, rename) and :class:`~streamtune.checkpoints.s3_store.S3CheckpointStore`
(S3-compatible object storage: objects first, manifest next, LATEST last, conditional writes).
The trainer, the inference server and the CLI only use what is listed here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from streamtune.checkpoints.manifest import FileEntry, Manifest

ManifestBuilder = Callable[[int, dict[str, FileEntry]], Manifest]
PayloadWriter = Callable[[Path], None]


@dataclass(frozen=True)
class CheckedOutVersion:
    """A verified version as a local directory: every file there matched the manifest's sha256."""

    manifest: Manifest
    directory: Path


class VersionStore(Protocol):
    """Versions of one model lineage, published atomically and read by any number of servers."""

    keep_versions: int

    @property
    def location(self) -> str:
        """Where the versions live, for messages (a path or ``s3://bucket/prefix``; no secrets)."""
        ...

    @property
    def root(self) -> Path:
        """The local directory of this store: the versions themselves (directory backend) or
        the download cache and local-only state (object storage backend)."""
        ...

    def versions(self) -> list[int]:
        """Complete versions (a manifest was published), oldest first."""
        ...

    def latest_version(self) -> int | None:
        """The version LATEST names; the newest complete one if LATEST is absent or bad."""
        ...

    def read_manifest(self, version: int) -> Manifest:
        """The parsed manifest of ``version`` (files not checked)."""
        ...

    def verify(self, version: int, *, skip: Collection[str] = ()) -> Manifest:
        """The manifest of ``version`` after checking the size and sha256 of every file but
        those named in ``skip``."""
        ...

    def checkout(self, version: int, *, skip: Collection[str] = ()) -> CheckedOutVersion:
        """``version`` verified, in a local directory (downloaded and cached when remote); the
        files named in ``skip`` are neither checked nor downloaded (a server passes
        :data:`~streamtune.checkpoints.manifest.TRAINER_ONLY_FILES`)."""
        ...

    def publish(self, write_payload: PayloadWriter, build_manifest: ManifestBuilder, *, prune: bool = True) -> Manifest:
        """Write a new version so that readers see all of it or nothing, then point LATEST at it;
        then apply the retention, unless ``prune`` is False (the caller then calls :meth:`prune`)."""
        ...

    def prune(self, latest: int) -> None:
        """Remove versions beyond the retention, never ``latest`` nor what a retained delta needs."""
        ...

    def set_latest(self, version: int) -> None:
        """Point LATEST at an existing complete version."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold LATEST against other writers between a check and a move (publish, rollback)."""
        ...

    def rollback(self, version: int) -> int | None:
        """Serve ``version`` again; returns the version LATEST named before."""
        ...

    def sweep_temporary(self) -> int:
        """Remove leftovers of writes interrupted by a crash; only one writer may call this."""
        ...
