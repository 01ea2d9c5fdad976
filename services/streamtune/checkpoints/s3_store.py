"""The checkpoint store on S3-compatible object storage (AWS S3, MinIO, Ceph RGW, GCS interop).

Layout under ``s3://bucket/prefix``::

    LATEST                        "7\\n": the version to serve (rollback moves it back)
    v00000007/<file>              a version's weights and bookkeeping, written first
    v00000007/manifest.json       written after every file: its presence makes the version exist

Object storage has no rename, so "complete or absent" comes from ordering instead: a reader only
considers versions whose manifest exists, the manifest is written only after every file it lists,
and each file is checked against the manifest's size and sha256 before anything is loaded. Every
write is conditional where the service supports it: a version's objects and its manifest with
``If-None-Match: *`` (two writers can never both own version N), LATEST with ``If-Match`` on the
ETag read when the writer took :meth:`S3CheckpointStore.lock` (a rollback is never overwritten by
a publish that was under way). Readers load from a verified local copy (:meth:`checkout`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import tempfile
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

from safetensors import SafetensorError

from streamtune.checkpoints.checkout_cache import CheckoutCache, check_file
from streamtune.checkpoints.manifest import MANIFEST_FILE, FileEntry, Manifest, file_sha256
from streamtune.checkpoints.protocol import CheckedOutVersion, ManifestBuilder, PayloadWriter
from streamtune.checkpoints.retention import needed_versions
from streamtune.checkpoints.s3_objects import BucketObjects, PreconditionFailed, S3Location, make_client
from streamtune.checkpoints.store import MAX_MANIFEST_BYTES, CheckpointStore, version_dirname
from streamtune.errors import CheckpointError, LineageMovedError, PublishError

logger = logging.getLogger(__name__)

LATEST_OBJECT = "LATEST"
CACHE_DIR = "s3-cache"
_MAX_LATEST_BYTES = 64
_VERSION_OBJECT = re.compile(r"^(v(\d{8,}))/(.+)$")


class S3CheckpointStore:
    """Versions of one model lineage under an ``s3://`` prefix, cached locally for loading;
    ``root`` is a local directory for what is never shared (the download cache, staging of
    uploads, local-only state other packages keep beside a store)."""

    def __init__(self, location: S3Location, root: Path, keep_versions: int = 10, client: Any = None) -> None:
        self.root = Path(root)
        self.keep_versions = keep_versions
        self.objects = BucketObjects(client if client is not None else make_client(), location)
        # The cache is a directory store of its own, per bucket and prefix.
        tag = hashlib.sha256(str(location).encode()).hexdigest()[:12]
        self.cache = CheckoutCache(self.root / CACHE_DIR / tag, keep_versions)
        self._writer_lock = threading.Lock()
        self._held = threading.local()  # the ETag of LATEST seen when this thread took lock()
        self._latest: int | None = None
        self._latest_known = False
        self._manifests: dict[tuple[int, str], Manifest] = {}

    @property
    def location(self) -> str:
        return str(self.objects.location)

    # --- reading ---------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Complete versions (their manifest exists), oldest first."""
        return sorted(version for version, names in self._numbered().items() if MANIFEST_FILE in names)

    def latest_version(self) -> int | None:
        """The version LATEST names; the newest complete one if LATEST is absent or bad.

        When the object store cannot be read, the answer of the last successful read is kept
        (logged): a trainer keeps training and a server keeps serving through a short outage.
        Only a store never read successfully raises :class:`CheckpointError`.
        """
        try:
            latest = self._latest_version()
        except CheckpointError as error:
            if not self._latest_known:
                raise
            logger.warning("cannot read LATEST (%s); keeping version %s", error, self._latest)
            return self._latest
        self._latest, self._latest_known = latest, True
        return latest

    def _latest_version(self) -> int | None:
        pointed = self._read_latest()[0]
        if pointed is not None and self.objects.exists(_object(pointed, MANIFEST_FILE)):
            return pointed
        if pointed is not None:
            logger.warning("LATEST names version %s which is not complete; ignoring it", pointed)
        versions = self.versions()
        return versions[-1] if versions else None

    def read_manifest(self, version: int) -> Manifest:
        return _parse_manifest(self._manifest_bytes(version), version)

    def verify(self, version: int, *, skip: Collection[str] = ()) -> Manifest:
        """Check every file's size and sha256 (but those in ``skip``) by streaming it."""
        manifest = self.read_manifest(version)
        for name, entry in manifest.files_except(skip):
            check_file(version, name, entry, *self.objects.stream_into(_object(version, name), None, entry.bytes))
        return manifest

    def checkout(self, version: int, *, skip: Collection[str] = ()) -> CheckedOutVersion:
        """``version`` in the local cache, verified; downloaded (but the files in ``skip``) unless
        a cached copy of the same manifest verifies. Older cached versions are removed."""
        raw = self._manifest_bytes(version)

        def fetch(name: str, sink: IO[bytes], max_bytes: int) -> tuple[str, int]:
            return self.objects.stream_into(_object(version, name), sink, max_bytes)

        return self.cache.checkout(_parse_manifest(raw, version), raw, fetch, skip)

    # --- writing ---------------------------------------------------------------------------
    def publish(self, write_payload: PayloadWriter, build_manifest: ManifestBuilder, *, prune: bool = True) -> Manifest:
        """Upload a new version so that readers see all of it or nothing, and point LATEST at it.

        Steps, in this order (a crash anywhere leaves nothing a reader would load):
        1. allocate the next version number (one more than any version-like object);
        2. ``write_payload`` writes the files into a local staging directory; each is hashed;
        3. every file is uploaded with ``If-None-Match: *`` (another writer owning the number fails
           here, before anything of ours is visible);
        4. ``manifest.json`` is uploaded last, also with ``If-None-Match: *``: the version exists;
        5. LATEST is replaced with ``If-Match`` on the ETag read under :meth:`lock` (or just now);
           if it moved meanwhile, the new version is withdrawn and :class:`LineageMovedError` raised;
        6. versions beyond the retention are removed (``prune=False``: the caller does it).

        A failure in steps 2–4 removes what this publish uploaded and raises :class:`PublishError`;
        LATEST and the versions already there are untouched.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        version, uploaded = 0, list[str]()
        try:
            version = max(self._numbered(), default=0) + 1  # Step 1
            with tempfile.TemporaryDirectory(prefix=".tmp-upload-", dir=self.root) as staging:
                directory = Path(staging)
                write_payload(directory)  # Step 2
                files = {
                    path.name: FileEntry(sha256=file_sha256(path), bytes=path.stat().st_size)
                    for path in sorted(directory.iterdir())
                }
                manifest = build_manifest(version, files)
                manifest.check()
                for name in files:  # Step 3
                    with open(directory / name, "rb") as body:
                        self.objects.put(_object(version, name), body, if_none_match=True)
                    uploaded.append(_object(version, name))
                etag = self.objects.put(_object(version, MANIFEST_FILE), manifest.to_json(), if_none_match=True)
                uploaded.append(_object(version, MANIFEST_FILE))  # Step 4 done: the version exists
                self._manifests[version, etag] = manifest
        except BaseException as error:
            self._withdraw(uploaded, version)
            # safetensors reports a full disk as its own SafetensorError, not as an OSError.
            if isinstance(error, (OSError, SafetensorError, CheckpointError)) and not isinstance(error, PublishError):
                raise PublishError(f"could not write version {version} to {self.location}: {error}") from error
            raise
        try:
            self._point_latest(version)  # Step 5 (the manifest was just written: no need to look)
        except LineageMovedError:
            self._withdraw(uploaded, version)
            raise
        if prune:
            self.prune(version)  # Step 6
        return manifest

    def set_latest(self, version: int) -> None:
        """Point LATEST at an existing complete version, only if it has not moved since this
        thread took :meth:`lock` (or since it is read here, outside a lock)."""
        if not self.objects.exists(_object(version, MANIFEST_FILE)):
            raise CheckpointError(f"version {version} does not exist in {self.location}")
        self._point_latest(version)

    def _point_latest(self, version: int) -> None:
        etag = self._held.etag if getattr(self._held, "active", False) else self._read_latest()[1]
        try:
            new_etag = self.objects.put(
                LATEST_OBJECT, f"{version}\n".encode(), if_none_match=etag is None, if_match=etag
            )
        except PreconditionFailed:
            raise LineageMovedError(
                f"LATEST in {self.location} was moved by another writer; not pointing it at version {version}"
            ) from None
        except CheckpointError as error:
            raise PublishError(f"could not update LATEST to {version}: {error}") from error
        self._held.etag = new_etag

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Optimistic: remember LATEST's ETag now; :meth:`set_latest` inside writes only if it is
        unchanged. Writers in this process also take a plain lock, so they queue as with flock."""
        with self._writer_lock:
            try:
                self._held.etag = self._read_latest()[1]
            except CheckpointError as error:
                raise PublishError(f"cannot take LATEST in {self.location}: {error}") from error
            self._held.active = True
            try:
                yield
            finally:
                self._held.active = False

    def rollback(self, version: int) -> int | None:
        """Serve ``version`` again: verify it, then point LATEST at it; newer versions are kept."""
        self.verify(version)
        with self.lock():
            previous = self.latest_version()
            self.set_latest(version)
        logger.warning("rolled back %s: LATEST %s -> %d", self.location, previous, version)
        return previous

    def sweep_temporary(self) -> int:
        """Remove local staging and cache leftovers, and remote versions without a manifest
        (a writer died between objects). Only one writer may call this, before publishing."""
        swept = CheckpointStore(self.root).sweep_temporary() + self.cache.sweep_temporary()
        for version, names in self._numbered().items():
            if MANIFEST_FILE not in names:
                self.objects.delete([_object(version, name) for name in names])
                logger.info("removed %d objects of version %d, never completed", len(names), version)
                swept += 1
        return swept

    # --- internals -------------------------------------------------------------------------
    def _numbered(self) -> dict[int, dict[str, str]]:
        """Every version-like object, by version number, complete or not: name -> ETag."""
        numbered: dict[int, dict[str, str]] = {}
        for name, etag in self.objects.entries():
            match = _VERSION_OBJECT.match(name)
            if match and match.group(1) == version_dirname(int(match.group(2))):
                numbered.setdefault(int(match.group(2)), {})[match.group(3)] = etag
        return numbered

    def _listed_manifest(self, version: int, etag: str) -> Manifest:
        """The manifest a listing showed with ``etag``, read once: a manifest never changes
        (If-None-Match), so retention need not fetch every retained one on every publish."""
        if (version, etag) not in self._manifests:
            if len(self._manifests) >= 4 * self.keep_versions:
                self._manifests.clear()
            self._manifests[version, etag] = self.read_manifest(version)
        return self._manifests[version, etag]

    def _read_latest(self) -> tuple[int | None, str | None]:
        """The version LATEST names (None if absent or unreadable) and its ETag (None if absent)."""
        found = self.objects.get(LATEST_OBJECT, _MAX_LATEST_BYTES)
        if found is None:
            return None, None
        text, etag = found[0].strip(), found[1]
        return (int(text) if text.isdigit() and int(text) >= 1 else None), etag

    def _manifest_bytes(self, version: int) -> bytes:
        found = self.objects.get(_object(version, MANIFEST_FILE), MAX_MANIFEST_BYTES)
        if found is None:
            raise CheckpointError(f"version {version} does not exist in {self.location}")
        return found[0]

    def _withdraw(self, names: list[str], version: int) -> None:
        """Delete what one publish uploaded, manifest first (best effort: a later sweep also does)."""
        try:
            self.objects.delete(sorted(names, key=lambda name: not name.endswith(MANIFEST_FILE)))
        except CheckpointError as error:
            logger.warning("could not withdraw the objects of version %d: %s", version, error)

    def prune(self, latest: int) -> None:
        """Remove versions beyond the retention, never ``latest`` (what LATEST names), nor what a
        retained delta needs: the manifest first, so a half-deleted version is never taken for one."""
        try:
            numbered = self._numbered()
        except CheckpointError as error:
            logger.warning("could not apply the retention: %s", error)
            return
        versions = sorted(version for version, names in numbered.items() if MANIFEST_FILE in names)
        cut = max(0, len(versions) - self.keep_versions)
        needed = needed_versions(versions[cut:], lambda v: self._listed_manifest(v, numbered[v][MANIFEST_FILE]))
        for version in versions[:cut]:
            if version == latest or version in needed:
                continue
            try:
                self.objects.delete([_object(version, MANIFEST_FILE)])
                self.objects.delete([_object(version, name) for name in set(numbered[version]) - {MANIFEST_FILE}])
            except CheckpointError as error:
                logger.warning("could not remove old version %d: %s", version, error)


def _object(version: int, name: str) -> str:
    return f"{version_dirname(version)}/{name}"


def _parse_manifest(raw: bytes, version: int) -> Manifest:
    manifest = Manifest.from_json(raw)
    if manifest.version != version:
        raise CheckpointError(f"the manifest of version {version} claims version {manifest.version}")
    return manifest
