"""A real S3 HTTP API for the object storage tests: moto's server, once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streamtune.testing.object_storage import MotoS3Server, S3Credentials


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Credentials]:
    """Endpoint and valid credentials of a moto server that enforces authentication."""
    with MotoS3Server(tmp_path_factory.mktemp("moto") / "moto.log") as credentials:
        yield credentials


@pytest.fixture
def s3_bucket(s3_server: S3Credentials, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the standard AWS variables pointing this process at the server."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = f"streamtune-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return bucket
