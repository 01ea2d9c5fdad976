"""The checkpoint store: versioned, atomically published model versions with manifests."""

from streamtune.checkpoints.manifest import Manifest
from streamtune.checkpoints.store import CheckpointStore

__all__ = ["CheckpointStore", "Manifest"]
