"""The store writes versions atomically and refuses anything that does not verify."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.errors import CheckpointError, PublishError
from tests.checkpoints.s3_helpers import manifest_for


def payload(content: bytes):
    def write(directory: Path) -> None:
        (directory / "adapter.safetensors").write_bytes(content)

    return write


def publish(store: CheckpointStore, content: bytes = b"weights") -> Manifest:
    return store.publish(payload(content), lambda version, files: manifest_for(version, files))


def test_publish_versions_monotonically_and_moves_latest(tmp_path):
    store = CheckpointStore(tmp_path)
    assert store.latest_version() is None
    first, second = publish(store, b"one"), publish(store, b"two")
    assert (first.version, second.version) == (1, 2)
    assert store.versions() == [1, 2]
    assert store.latest_version() == 2
    assert (tmp_path / "LATEST").read_text() == "2\n"
    verified = store.verify(2)
    assert verified.files["adapter.safetensors"].bytes == 3
    assert (store.path_of(2) / "adapter.safetensors").read_bytes() == b"two"


def test_retention_keeps_the_newest_and_the_latest(tmp_path):
    store = CheckpointStore(tmp_path, keep_versions=2)
    for _ in range(3):
        publish(store)
    store.set_latest(2)  # a rollback: 2 must survive pruning while it is LATEST
    publish(store)
    assert store.versions() == [3, 4]
    store.set_latest(3)
    publish(store)
    assert store.versions() == [4, 5]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_rollback_points_latest_back_without_deleting(tmp_path):
    store = CheckpointStore(tmp_path)
    for _ in range(3):
        publish(store)
    store.set_latest(1)
    assert store.latest_version() == 1
    assert store.versions() == [1, 2, 3]
    assert publish(store).version == 4  # numbering stays monotonic after a rollback
    with pytest.raises(CheckpointError, match="does not exist"):
        store.set_latest(99)


def _crash_while_writing(root: str) -> None:
    store = CheckpointStore(Path(root))

    def half_written(directory: Path) -> None:
        with open(directory / "adapter.safetensors", "wb") as handle:
            handle.write(b"partial")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-write

    store.publish(half_written, lambda version, files: manifest_for(version, files))


def test_crash_mid_write_leaves_the_previous_version_intact(tmp_path):
    store = CheckpointStore(tmp_path)
    publish(store, b"good")
    child = multiprocessing.get_context("fork").Process(target=_crash_while_writing, args=(str(tmp_path),))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL

    assert store.versions() == [1]
    assert store.latest_version() == 1
    assert store.verify(1).version == 1
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())  # the debris is there...
    assert store.sweep_temporary() == 1  # ...and swept by the next writer
    assert publish(store).version == 2


def test_failed_write_raises_and_changes_nothing(tmp_path):
    store = CheckpointStore(tmp_path)
    publish(store)

    def disk_full(directory: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(PublishError, match="No space left"):
        store.publish(disk_full, lambda version, files: manifest_for(version, files))
    assert store.versions() == [1] and store.latest_version() == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_tampered_file_fails_verification(tmp_path):
    store = CheckpointStore(tmp_path)
    publish(store, b"weights!")
    (store.path_of(1) / "adapter.safetensors").write_bytes(b"weights?")  # same size, other bytes
    with pytest.raises(CheckpointError, match="sha256"):
        store.verify(1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "adapter.safetensors").write_bytes(b"w"), "bytes"),
        (lambda d: (d / "adapter.safetensors").unlink(), "missing"),
        (
            lambda d: _edit_manifest(d, lambda m: m["files"].update({"../escape": m["files"]["adapter.safetensors"]})),
            "unsafe",
        ),
        (lambda d: _edit_manifest(d, lambda m: m.update(version=7)), "claims version"),
        (lambda d: (d / "manifest.json").write_text("{"), "not JSON"),
        (lambda d: _edit_manifest(d, lambda m: m.pop("files")), "malformed"),
    ],
)
def test_damaged_versions_are_refused(tmp_path, damage, message):
    store = CheckpointStore(tmp_path)
    publish(store)
    damage(store.path_of(1))
    with pytest.raises(CheckpointError, match=message):
        store.verify(1)


def test_version_directory_symlinked_outside_is_refused(tmp_path):
    outside = tmp_path / "outside"
    store_root = tmp_path / "store"
    publish(CheckpointStore(outside))
    store_root.mkdir()
    (store_root / "v00000001").symlink_to(outside / "v00000001")
    store = CheckpointStore(store_root)
    assert store.versions() == []  # not listed as a version...
    with pytest.raises(CheckpointError, match="outside"):
        store.verify(1)  # ...and refused if asked for by number


def test_latest_pointing_at_garbage_falls_back_to_newest_complete(tmp_path):
    store = CheckpointStore(tmp_path)
    publish(store)
    publish(store)
    (tmp_path / "LATEST").write_text("banana")
    assert store.latest_version() == 2
    (tmp_path / "LATEST").write_text("9\n")
    assert store.latest_version() == 2
    (tmp_path / "v00000003").mkdir()  # no manifest: an incomplete directory is not a version
    assert store.versions() == [1, 2]


def _edit_manifest(directory: Path, change) -> None:
    path = directory / "manifest.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
