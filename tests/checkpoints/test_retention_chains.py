"""Retention never removes a snapshot (or delta) that a retained delta is applied onto; the
manifest's delta fields read back and old manifests read as full snapshots."""

from __future__ import annotations

import dataclasses
import json

import pytest

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.errors import CheckpointError
from tests.checkpoints.test_store import manifest_for, payload


def publish_chain(store: CheckpointStore, pattern: str) -> None:
    """Publish one version per letter: S a full snapshot, D a delta on the previous version."""
    chain = 0
    for letter in pattern:

        def build(version: int, files, letter=letter, chain=chain) -> Manifest:
            base = manifest_for(version, files, parent=version - 1 if version > 1 else None)
            if letter == "S":
                return dataclasses.replace(base, model_kind="hybrid", tuning={"tuning": "hybrid"})
            return dataclasses.replace(
                base, model_kind="hybrid", tuning={"tuning": "hybrid"}, delta_of=version - 1, chain_length=chain + 1
            )

        store.publish(payload(letter.encode()), build)
        chain = 0 if letter == "S" else chain + 1


def test_retention_keeps_the_chain_of_every_retained_delta(tmp_path):
    store = CheckpointStore(tmp_path, keep_versions=2)
    publish_chain(store, "SDDDDD")  # v1 snapshot, v2..v6 deltas
    # The newest two (5, 6) need 4, 3, 2 and the snapshot 1: nothing may go.
    assert store.versions() == [1, 2, 3, 4, 5, 6]
    publish_chain_after(store, "SD")  # v7 snapshot, v8 delta on it
    assert store.versions() == [7, 8]


def publish_chain_after(store: CheckpointStore, pattern: str) -> None:
    chain = 0
    for letter in pattern:
        is_delta = letter == "D"
        chain = chain + 1 if is_delta else 0

        def build(version: int, files, is_delta=is_delta, chain=chain) -> Manifest:
            base = manifest_for(version, files, parent=version - 1)
            return dataclasses.replace(
                base,
                model_kind="hybrid",
                tuning={"tuning": "hybrid"},
                delta_of=version - 1 if is_delta else None,
                chain_length=chain,
            )

        store.publish(payload(letter.encode()), build)


def test_every_retained_version_has_its_whole_chain(tmp_path):
    store = CheckpointStore(tmp_path, keep_versions=3)
    publish_chain(store, "SDDSDDD")
    kept = store.versions()
    for version in kept:  # walk each chain down to a snapshot through retained versions only
        manifest = store.read_manifest(version)
        while manifest.delta_of is not None:
            assert manifest.delta_of in kept
            manifest = store.read_manifest(manifest.delta_of)
    assert 1 not in kept and 4 in kept  # the old snapshot went, the one the deltas need stayed


def test_manifest_delta_fields_round_trip_and_default_to_a_text_snapshot(tmp_path):
    store = CheckpointStore(tmp_path)
    publish_chain(store, "SD")
    delta = store.read_manifest(2)
    assert (delta.model_kind, delta.delta_of, delta.chain_length, delta.is_delta) == ("hybrid", 1, 1, True)
    old = json.loads(store.read_manifest(1).to_json())
    for name in ("model_kind", "delta_of", "chain_length"):
        del old[name]
    old["tuning"] = {"tuning": "lora"}  # what a text version written before families holds
    parsed = Manifest.from_json(json.dumps(old).encode())
    assert (parsed.model_kind, parsed.delta_of, parsed.is_delta) == ("text", None, False)


def test_a_delta_without_a_chain_length_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    publish_chain(store, "SD")
    raw = json.loads(store.read_manifest(2).to_json())
    raw["chain_length"] = 0
    with pytest.raises(CheckpointError, match="chain_length"):
        Manifest.from_json(json.dumps(raw).encode())


def test_retention_reads_each_manifest_of_a_long_chain_once(tmp_path):
    """Retention runs with every publish and the oldest retained delta's chain reaches back to
    its snapshot: each link is read from its manifest once, not once per publish."""
    store = CheckpointStore(tmp_path, keep_versions=2)
    publish_chain(store, "S" + "D" * 9)
    reads: list[int] = []
    read_manifest = store.read_manifest

    def counted(version: int) -> Manifest:
        reads.append(version)
        return read_manifest(version)

    store.read_manifest = counted  # type: ignore[method-assign]
    publish_chain_after(store, "DDD")  # v11..v13, the chain still reaches v1
    assert store.versions() == list(range(1, 14))
    assert sorted(reads) == [11, 12, 13], reads  # the new versions only


def test_a_replaced_manifest_is_read_again_by_retention(tmp_path):
    store = CheckpointStore(tmp_path, keep_versions=2)
    publish_chain(store, "SDD")  # v3 on v2 on v1: retention has read every link
    assert store.versions() == [1, 2, 3]
    manifest_path = store.path_of(2) / "manifest.json"
    replaced = json.loads(manifest_path.read_text())
    replaced["delta_of"], replaced["chain_length"] = None, 0  # v2 rewritten as a snapshot
    manifest_path.write_text(json.dumps(replaced))
    publish_chain_after(store, "D")  # v4 on v3 on v2, which needs nothing now
    assert store.versions() == [2, 3, 4]


def _waiting(store: CheckpointStore) -> list[str]:
    return sorted(entry.name for entry in store.root.glob(".tmp-delete-*"))


def test_a_freed_chain_leaves_at_once_and_its_files_go_a_few_per_publish(tmp_path):
    """A snapshot's chain ages out all at once: every version leaves the listing with that
    publish, while their files are deleted four versions per publish (one publish deleting them
    all stalled the trainer's loop), until none is left."""
    store = CheckpointStore(tmp_path, keep_versions=2)
    publish_chain(store, "S" + "D" * 11)  # v1 snapshot, v2..v12 deltas: all needed
    assert store.versions() == list(range(1, 13))
    publish_chain_after(store, "SD")  # v13 snapshot, v14 a delta on it: v1..v12 go at v14
    assert store.versions() == [13, 14]
    assert len(_waiting(store)) == 12 - 4
    publish_chain_after(store, "S")  # v15: v14 still needs v13; four more deleted
    assert store.versions() == [13, 14, 15] and len(_waiting(store)) == 4
    publish_chain_after(store, "S")  # v16: v13 and v14 go
    assert store.versions() == [15, 16] and len(_waiting(store)) == 2
    publish_chain_after(store, "S")
    assert store.versions() == [16, 17] and _waiting(store) == []


def test_remove_pruned_deletes_every_waiting_version_now(tmp_path):
    """``forget`` must leave no copy of a user on disk: versions waiting for deletion go at once,
    those another store object (or an earlier process) left waiting too."""
    store = CheckpointStore(tmp_path, keep_versions=1)
    publish_chain(store, "S" + "D" * 9)
    publish_chain_after(store, "S")  # v1..v10 leave; four are deleted
    assert len(_waiting(store)) == 6
    CheckpointStore(tmp_path, keep_versions=1).remove_pruned()  # not the object that queued them
    assert _waiting(store) == []
    publish_chain_after(store, "S")  # the first object's queue names deleted paths: no error
    assert store.versions() == [12] and _waiting(store) == []
