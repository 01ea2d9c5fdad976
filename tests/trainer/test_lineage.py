"""Publishing under the store's lock, rollbacks, and the lineage audit (real store, real producer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError, LineageMovedError
from streamtune.kafka.clients import ensure_topics, make_producer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import TuningSpec
from streamtune.testing.weights_export import WeightsExport
from streamtune.trainer.versions.files import EVENTS_FILE, STREAM_STATE_FILE, VersionEvents, read_stream_state
from streamtune.trainer.versions.lineage import audit_lineage
from streamtune.trainer.versions.publisher import KafkaSide, VersionDraft, VersionPublisher


@dataclass
class Writer:
    store: CheckpointStore
    publisher: VersionPublisher
    commits: list[dict[str, int]]

    def publish(self, version_draft):
        return self.publisher.publish(version_draft)


@pytest.fixture
def writer(settings):
    ensure_topics(settings, [(settings.models_topic, 1)])
    store = CheckpointStore(settings.checkpoint_dir, keep_versions=100)
    producer = make_producer(settings)
    commits: list[dict[str, int]] = []
    kafka = KafkaSide(producer, settings.models_topic, commits.append)
    publisher = VersionPublisher(store, kafka, WeightsExport("base", TuningSpec(tuning="full"), 32), TrainerMetrics())
    yield Writer(store, publisher, commits)
    producer.flush(5)


def draft(parent, trained, offset, discarded=()):
    return VersionDraft(
        snapshot={"weight": torch.full((2,), float(offset))},
        parent_version=parent,
        kafka_offsets={"events:0": offset},
        examples_seen=offset,
        examples_in_version=len(trained),
        last_train_loss=0.5,
        data_watermark_ms=None,
        produced_watermark_ms=None,
        events=VersionEvents(trained=list(trained), discarded=list(discarded), held_out=1, duplicates=2),
        stream_state={"recent_ids": np.arange(3, dtype=np.int64)},
    )


def test_versions_carry_their_events_and_stream_state(writer):
    manifest = writer.publish(draft(None, ["a", "b"], 2))
    store = writer.store
    assert {EVENTS_FILE, STREAM_STATE_FILE} <= set(manifest.files)
    store.verify(manifest.version)  # the new files are hashed like the weights
    assert read_stream_state(store.path_of(1))["recent_ids"].tolist() == [0, 1, 2]
    assert writer.commits == [{"events:0": 2}]  # committed after the version was durable


def test_rollback_is_never_overwritten_by_a_publish_from_the_old_lineage(writer):
    store = writer.store
    writer.publish(draft(None, ["a"], 1))
    writer.publish(draft(1, ["b"], 2))
    assert store.rollback(1) == 2
    with pytest.raises(LineageMovedError):
        writer.publish(draft(2, ["c"], 3))  # trained on version 2, which is no longer served
    assert store.versions() == [1, 2] and store.latest_version() == 1
    assert writer.commits == [{"events:0": 1}, {"events:0": 2}]  # nothing committed for it

    writer.publish(draft(1, ["b", "c"], 3))  # the trainer continued from version 1
    assert store.latest_version() == 3 and store.versions() == [1, 2, 3]  # 2 is kept
    audit = audit_lineage(store)
    assert audit.versions == [1, 3] and audit.complete
    assert audit.trained == ["a", "b", "c"] and audit.repeated() == {}
    assert audit.held_out == 2 and audit.duplicates == 4
    assert audit_lineage(store, 2).trained == ["a", "b"]  # the abandoned branch is still auditable


def test_rollback_refuses_a_missing_or_corrupt_version(writer):
    store = writer.store
    writer.publish(draft(None, ["a"], 1))
    with pytest.raises(CheckpointError):
        store.rollback(7)
    (store.path_of(1) / EVENTS_FILE).write_bytes(b'{"format": 1}')
    with pytest.raises(CheckpointError):
        store.rollback(1)  # verified first: a tampered version is never made LATEST


def test_audit_reports_a_lineage_cut_by_retention(writer):
    store = writer.store
    for version in range(1, 4):
        writer.publish(draft(version - 1 or None, [f"e{version}"], version))
    store.keep_versions = 1
    store.prune(3)
    audit = audit_lineage(store)
    assert not audit.complete and audit.versions == [3] and audit.trained == ["e3"]


def test_events_file_is_parsed_strictly():
    assert VersionEvents.from_json(VersionEvents(["a"], ["b"], 1, 2).to_json()) == VersionEvents(["a"], ["b"], 1, 2)
    for raw in (
        b"[]",
        b'{"format": 2}',
        b'{"format": 1, "trained": [1], "discarded": [], "held_out": 0, "duplicates": 0}',
        b'{"format": 1, "trained": [], "discarded": [], "held_out": -1, "duplicates": 0}',
    ):
        with pytest.raises(CheckpointError):
            VersionEvents.from_json(raw)
