"""A server checks out only what it reads: the trainer's own files (its event ledger and its
optimizer and stream state) are neither hashed nor downloaded for serving, while the trainer
still gets, and verifies, every file."""

from __future__ import annotations

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.checkpoints.manifest import STREAM_STATE_FILE, TRAINER_ONLY_FILES
from streamtune.errors import CheckpointError
from tests.checkpoints.s3_helpers import EVENTS, WEIGHTS, manifest_for
from tests.checkpoints.test_s3_store import s3_store


def _write(directory):
    (directory / WEIGHTS).write_bytes(b"weights" * 100)
    (directory / EVENTS).write_bytes(b'{"trained": []}')
    (directory / STREAM_STATE_FILE).write_bytes(b"optimizer moments" * 100)


def _publish(store):
    return store.publish(_write, lambda version, entries: manifest_for(version, entries))


def test_a_server_does_not_hash_the_trainers_files_but_the_trainer_does(tmp_path):
    store = CheckpointStore(tmp_path / "store")
    manifest = _publish(store)
    state = store.path_of(manifest.version) / STREAM_STATE_FILE
    state.write_bytes(state.read_bytes()[::-1])  # same size, other bytes: only a hash can tell
    assert store.checkout(manifest.version, skip=TRAINER_ONLY_FILES).manifest == manifest
    with pytest.raises(CheckpointError, match="sha256"):
        store.checkout(manifest.version)
    (store.path_of(manifest.version) / WEIGHTS).write_bytes(b"w" * 700)  # what a server reads is checked
    with pytest.raises(CheckpointError, match="sha256"):
        store.checkout(manifest.version, skip=TRAINER_ONLY_FILES)


def test_a_server_never_downloads_the_trainers_files_from_object_storage(tmp_path, s3_bucket):
    manifest = _publish(s3_store(s3_bucket, tmp_path, name="trainer-cache"))
    server = s3_store(s3_bucket, tmp_path, name="server-cache")
    served = server.checkout(manifest.version, skip=TRAINER_ONLY_FILES)
    assert sorted(path.name for path in served.directory.iterdir()) == [WEIGHTS, "manifest.json"]
    # The same cache asked for the whole version (a trainer resuming) downloads the rest.
    whole = server.checkout(manifest.version)
    assert sorted(path.name for path in whole.directory.iterdir()) == sorted(
        [WEIGHTS, EVENTS, STREAM_STATE_FILE, "manifest.json"]
    )
