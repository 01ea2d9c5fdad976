"""Choose the checkpoint store backend from a location: a local path or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path

from streamtune.checkpoints.protocol import VersionStore
from streamtune.checkpoints.store import CheckpointStore
from streamtune.errors import ConfigurationError

S3_SCHEME = "s3://"


def is_object_storage(uri: str | None) -> bool:
    """Whether ``uri`` names object storage rather than a local directory."""
    return uri is not None and uri.lower().startswith(S3_SCHEME)


def open_store(uri: str | None, directory: Path, keep_versions: int = 10) -> VersionStore:
    """The store at ``uri`` (``STREAMTUNE_CHECKPOINT_URI``), else the directory ``directory``.

    With an ``s3://`` location, ``directory`` (``STREAMTUNE_CHECKPOINT_DIR``) still holds what is
    local to this machine: the download cache and staging. Nothing is contacted here; the first
    read or write is, and its errors name the location and what to check.
    """
    if not is_object_storage(uri):
        return CheckpointStore(Path(uri) if uri else directory, keep_versions)
    try:
        from streamtune.checkpoints.s3_objects import S3Location
        from streamtune.checkpoints.s3_store import S3CheckpointStore
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in ("boto3", "botocore"):
            raise ConfigurationError(f"the checkpoint store {uri} needs boto3: pip install 'streamtune[s3]'") from None
        raise
    return S3CheckpointStore(S3Location.parse(uri), directory, keep_versions)
