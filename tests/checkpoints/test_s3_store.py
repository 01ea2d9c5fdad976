"""The object storage backend against a real S3 HTTP API (moto's server): the same guarantees
as the directory store — publish, load, retention, rollback, verification — by ordering and
conditional writes instead of rename."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from streamtune.checkpoints import CheckpointStore, open_store
from streamtune.checkpoints.s3_store import S3CheckpointStore
from streamtune.errors import CheckpointError, LineageMovedError, PublishError
from streamtune.testing.object_storage import S3Credentials
from tests.checkpoints.s3_helpers import EVENTS, WEIGHTS, manifest_for, payload, publish


def s3_store(bucket: str, tmp_path: Path, keep_versions: int = 10, name: str = "cache") -> S3CheckpointStore:
    store = open_store(f"s3://{bucket}/lineages/demo", tmp_path / name, keep_versions)
    assert isinstance(store, S3CheckpointStore)
    return store


def object_names(server: S3Credentials, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(entry["Key"] for entry in listed)


def test_the_uri_chooses_the_backend(tmp_path, s3_bucket):
    assert isinstance(open_store(None, tmp_path / "dir"), CheckpointStore)
    local = open_store(str(tmp_path / "elsewhere"), tmp_path / "dir")
    assert isinstance(local, CheckpointStore) and local.root == tmp_path / "elsewhere"
    remote = s3_store(s3_bucket, tmp_path)
    assert remote.location == f"s3://{s3_bucket}/lineages/demo"
    assert remote.root == tmp_path / "cache"


def test_publish_then_load_from_a_local_checkout(tmp_path, s3_bucket, s3_server):
    store = s3_store(s3_bucket, tmp_path)
    assert store.latest_version() is None and store.versions() == []
    first, second = publish(store, b"one"), publish(store, b"two")
    assert (first.version, second.version) == (1, 2)
    assert store.versions() == [1, 2] and store.latest_version() == 2
    prefix = "lineages/demo/"
    assert object_names(s3_server, s3_bucket) == sorted(
        [f"{prefix}LATEST"]
        + [f"{prefix}v0000000{v}/{name}" for v in (1, 2) for name in (EVENTS, WEIGHTS, "manifest.json")]
    )
    assert store.verify(2) == second

    # A reader elsewhere (its own cache) gets a verified local directory.
    reader = s3_store(s3_bucket, tmp_path, name="reader-cache")
    checked_out = reader.checkout(2)
    assert checked_out.manifest == second
    assert checked_out.directory.is_relative_to(tmp_path / "reader-cache")
    assert (checked_out.directory / WEIGHTS).read_bytes() == payload_bytes(b"two")
    assert reader.checkout(2).directory == checked_out.directory  # served from the cache


def payload_bytes(tag: bytes, size: int = 4096) -> bytes:
    return (tag * (size // len(tag) + 1))[:size]


def test_a_damaged_object_is_refused_and_never_cached(tmp_path, s3_bucket, s3_server):
    store = s3_store(s3_bucket, tmp_path)
    publish(store, b"good")
    key = "lineages/demo/v00000001/" + WEIGHTS
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=payload_bytes(b"evil"))
    with pytest.raises(CheckpointError, match="sha256"):
        store.verify(1)
    with pytest.raises(CheckpointError, match="sha256"):
        store.checkout(1)
    assert store.cache.versions() == []
    s3_server.client().put_object(Bucket=s3_bucket, Key=key, Body=b"short")
    with pytest.raises(CheckpointError, match="bytes"):
        store.checkout(1)


def test_a_tampered_cached_copy_is_downloaded_again(tmp_path, s3_bucket):
    store = s3_store(s3_bucket, tmp_path)
    publish(store, b"good")
    directory = store.checkout(1).directory
    (directory / WEIGHTS).write_bytes(payload_bytes(b"bad!"))
    assert (store.checkout(1).directory / WEIGHTS).read_bytes() == payload_bytes(b"good")


def test_retention_removes_old_versions_objects_and_cached_copies(tmp_path, s3_bucket, s3_server):
    store = s3_store(s3_bucket, tmp_path, keep_versions=2)
    for index in range(4):
        publish(store, f"v{index}".encode())
        store.checkout(index + 1)
    assert store.versions() == [3, 4]
    assert not [name for name in object_names(s3_server, s3_bucket) if "/v00000001/" in name or "/v00000002/" in name]
    assert store.cache.versions() == [3, 4]
    with pytest.raises(CheckpointError, match="does not exist"):
        store.checkout(1)


def test_rollback_moves_latest_back_and_keeps_newer_versions(tmp_path, s3_bucket):
    store = s3_store(s3_bucket, tmp_path, keep_versions=2)
    for tag in (b"a", b"b", b"c"):
        publish(store, tag)
    assert store.rollback(2) == 3
    assert store.latest_version() == 2 and store.versions() == [2, 3]
    publish(store, b"d")
    publish(store, b"e")
    # Retention never removes the version LATEST names.
    assert store.latest_version() == 5
    with pytest.raises(CheckpointError, match="does not exist"):
        store.rollback(1)


def test_a_publish_racing_a_rollback_is_withdrawn(tmp_path, s3_bucket):
    """The trainer checks LATEST under lock() and publishes; a rollback by another process in
    between must win: LATEST is written with If-Match on the ETag seen under the lock."""
    trainer, operator = s3_store(s3_bucket, tmp_path), s3_store(s3_bucket, tmp_path, name="operator")
    publish(trainer, b"one")
    publish(trainer, b"two")
    with trainer.lock():
        assert trainer.latest_version() == 2  # the trainer's parent check passes...
        operator.rollback(1)  # ...then an operator rolls back
        with pytest.raises(LineageMovedError):
            publish(trainer, b"three")
    assert operator.latest_version() == 1
    assert operator.versions() == [1, 2]  # version 3 was withdrawn, not left for a pin or a fallback


def test_two_writers_never_share_a_version_number(tmp_path, s3_bucket):
    """Both pick version 2; the one whose first object lands second fails, the other's is intact."""
    slow, fast = s3_store(s3_bucket, tmp_path), s3_store(s3_bucket, tmp_path, name="fast")
    publish(slow, b"one")

    def write_while_another_publishes(directory: Path) -> None:
        assert publish(fast, b"fast").version == 2
        payload(b"slow")(directory)

    with pytest.raises(PublishError, match="another writer"):
        slow.publish(write_while_another_publishes, lambda version, files: manifest_for(version, files))
    checked_out = slow.checkout(2)
    assert (checked_out.directory / WEIGHTS).read_bytes() == payload_bytes(b"fast")
    assert slow.latest_version() == 2


def test_a_failed_payload_leaves_nothing_behind(tmp_path, s3_bucket, s3_server):
    store = s3_store(s3_bucket, tmp_path)
    publish(store, b"one")
    before = object_names(s3_server, s3_bucket)

    def unsafe_name(version, files):
        return dataclasses.replace(manifest_for(version, files), files={**files, "../escape": files[WEIGHTS]})

    with pytest.raises(CheckpointError, match="unsafe"):
        store.publish(payload(b"two"), unsafe_name)
    assert object_names(s3_server, s3_bucket) == before
    assert not list(store.root.glob(".tmp-*"))
