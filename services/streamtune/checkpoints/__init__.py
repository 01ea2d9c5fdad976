"""The checkpoint store: versioned, atomically published model versions with manifests, in a
local directory or on S3-compatible object storage (:func:`open_store` picks the backend)."""

from streamtune.checkpoints.manifest import Manifest
from streamtune.checkpoints.opening import is_object_storage, open_store
from streamtune.checkpoints.protocol import CheckedOutVersion, VersionStore
from streamtune.checkpoints.store import CheckpointStore

__all__ = ["CheckedOutVersion", "CheckpointStore", "Manifest", "VersionStore", "is_object_storage", "open_store"]
