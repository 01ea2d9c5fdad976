"""Hashing and fsyncing a version's files on threads: every entry right, and a process forked
after its parent used the threads still publishes (its pool is its own)."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

from streamtune.checkpoints import CheckpointStore
from streamtune.checkpoints.durable_files import hash_and_fsync
from tests.checkpoints.test_store import publish


def test_every_file_gets_its_own_hash_and_size(tmp_path):
    paths = []
    for index in range(7):
        path = tmp_path / f"part-{index}.bin"
        path.write_bytes(bytes([index]) * (1000 * index + 1))
        paths.append(path)
    entries = hash_and_fsync(paths)
    assert list(entries) == [path.name for path in paths]
    for path in paths:
        data = path.read_bytes()
        assert entries[path.name].sha256 == hashlib.sha256(data).hexdigest()
        assert entries[path.name].bytes == len(data)


def _publish_in_child(root: str) -> None:
    publish(CheckpointStore(Path(root)))


def test_a_forked_child_publishes_after_its_parent_did(tmp_path):
    store = CheckpointStore(tmp_path)
    publish(store)  # the parent's threads exist now
    child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(str(tmp_path),))
    child.start()
    child.join(30)
    if child.is_alive():  # stuck on a pool whose threads stayed in the parent
        child.kill()
    assert child.exitcode == 0
    assert store.versions() == [1, 2] and store.verify(2).version == 2
