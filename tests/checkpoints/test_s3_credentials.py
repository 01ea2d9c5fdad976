"""Wrong or missing credentials and a missing bucket: a clear error naming what to check, no
secret in it or in any log line, and nothing written."""

from __future__ import annotations

import logging
import uuid

import pytest

from streamtune.checkpoints import open_store
from streamtune.errors import CheckpointError, PublishError
from tests.checkpoints.s3_helpers import publish


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger (botocore's included), at debug level."""
    caplog.set_level(logging.DEBUG)
    return caplog


def leaked(secret: str, error: BaseException, logs: pytest.LogCaptureFixture) -> list[str]:
    chain, current = [], error
    while current is not None:
        chain.append(str(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return [text for text in [*chain, logs.text] if secret in text]


def test_a_wrong_secret_is_refused_clearly_and_nothing_is_written(
    tmp_path, s3_bucket, s3_server, monkeypatch, debug_logs
):
    secret = f"wrong-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = open_store(f"s3://{s3_bucket}/denied", tmp_path)
    with pytest.raises(PublishError, match=r"refused the credentials \(SignatureDoesNotMatch\)") as raised:
        publish(store)
    assert "AWS_SECRET_ACCESS_KEY" in str(raised.value)  # says what to check
    assert "botocore" in debug_logs.text  # the client's own debug records were captured...
    assert not leaked(secret, raised.value, debug_logs)  # ...and neither they nor the error hold the secret
    assert s3_server.access_key_id not in str(raised.value)
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    with pytest.raises(CheckpointError, match="refused the credentials") as reading:
        store.latest_version()
    assert not leaked(secret, reading.value, debug_logs)


def test_an_unknown_access_key_is_refused(tmp_path, s3_bucket, s3_server, monkeypatch, debug_logs):
    key_id, secret = "AKIA" + uuid.uuid4().hex[:16].upper(), f"secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = open_store(f"s3://{s3_bucket}/denied", tmp_path)
    with pytest.raises(PublishError, match=r"InvalidAccessKeyId") as raised:
        publish(store)
    assert key_id not in str(raised.value) and not leaked(secret, raised.value, debug_logs)
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_no_credentials_at_all(tmp_path, s3_bucket, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to find here
    with pytest.raises(CheckpointError, match="no AWS credentials found"):
        open_store(f"s3://{s3_bucket}/anonymous", tmp_path).latest_version()


def test_a_missing_bucket_is_named(tmp_path, s3_bucket):
    store = open_store(f"s3://{s3_bucket}-missing/x", tmp_path)
    with pytest.raises(CheckpointError, match=f"bucket '{s3_bucket}-missing' does not exist"):
        store.versions()
