"""A data-parallel trainer group on CPU (gloo) over the real broker, started as a user would.

What this proves: two ranks reading disjoint partitions train every valid, non-held-out event
exactly once (re-deliveries to the other partition, so to the other rank, included) and write
one lineage whose manifests hold every partition's offset; SIGKILLing a rank five times during a
replay takes the group down and torchrun brings it back each time, losing and repeating
nothing; and a lineage started with two ranks resumes with three, partitions reassigned.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.kafka.clients import ensure_topics
from streamtune.testing.crash_harness import CrashStream, crash_stream, produce_records, published_records
from streamtune.testing.network import wait_for
from streamtune.testing.trainer_group import TrainerGroup, end_offsets
from streamtune.trainer.versions.lineage import LineageAudit, audit_lineage

pytestmark = pytest.mark.slow


@pytest.fixture
def group_settings(settings):
    group_settings = settings.model_copy(
        update={
            "batch_size": 8,
            "publish_every_batches": 1,
            "publish_max_share": 0.0,  # a version per batch, backlog or not
            "max_batch_latency_ms": 100,
            "keep_versions": 100_000,  # the audit walks the whole lineage
            "gate_tolerance": 1e6,  # accounting, not quality, is under test
            "gate_auc_tolerance": 1.0,
            "holdout_share": 0.1,
            "trainer_metrics_port": 0,
            "events_topic_partitions": 3,
        }
    )
    # Created before anything is produced: a producer would have the broker create it its way.
    ensure_topics(group_settings, [(group_settings.events_topic, 3)])
    return group_settings


def _wait_for_everything(store: CheckpointStore, records: int, group: TrainerGroup, timeout_s: float = 240) -> None:
    try:
        wait_for(lambda: published_records(store) == records, timeout_s, what="a version covering every record")
    except Exception:
        raise AssertionError(group.log()[-4000:]) from None


def _stop(group: TrainerGroup, ranks: int) -> None:
    """Stop the group; every rank must have stopped cleanly (after its last version)."""
    group.stop()
    assert group.log().count(f" of {ranks} stopped [streamtune.distributed.launch]") == ranks, group.log()[-4000:]


def _assert_exactly_once(audit: LineageAudit, stream: CrashStream) -> None:
    trained = Counter(audit.trained)
    assert audit.complete
    assert sorted(stream.expected - set(trained)) == [], "events never trained"
    assert {event_id: n for event_id, n in trained.items() if n > 1} == {}, "events trained twice"
    assert set(trained) <= stream.expected, "held-out or unknown events trained"
    assert audit.discarded == []
    assert audit.held_out == stream.held_out
    assert audit.duplicates == stream.redeliveries
    # examples trained plus examples held out equal the distinct valid events produced
    assert len(audit.trained) + audit.held_out == len(stream.expected) + stream.held_out


def _assert_at_the_end(settings, store: CheckpointStore) -> None:
    manifest = store.read_manifest(store.latest_version())
    ends = end_offsets(settings.bootstrap_servers, settings.events_topic, settings.events_topic_partitions)
    assert manifest.kafka_offsets == ends


def test_two_ranks_train_every_event_exactly_once(group_settings, tmp_path):
    stream = crash_stream(events=240, holdout_share=group_settings.holdout_share, seed=5)
    store = CheckpointStore(group_settings.checkpoint_dir)
    group = TrainerGroup(group_settings, 2, tmp_path / "group.log")
    try:
        produce_records(group_settings.bootstrap_servers, group_settings.events_topic, stream.records)
        _wait_for_everything(store, len(stream.records), group)
    finally:
        _stop(group, 2)
    log = group.log()
    assert "rank 0 reads partitions [0, 2] of 3" in log and "rank 1 reads partitions [1] of 3" in log
    _assert_exactly_once(audit_lineage(store), stream)
    _assert_at_the_end(group_settings, store)


@pytest.mark.timeout(900)
def test_sigkill_of_a_rank_five_times_loses_and_repeats_nothing(group_settings, tmp_path):
    kills = 5
    stream = crash_stream(events=300, holdout_share=group_settings.holdout_share, seed=7)
    store = CheckpointStore(group_settings.checkpoint_dir)
    rng = random.Random(7)
    chunk = -(-len(stream.records) // (kills + 1))
    group = TrainerGroup(group_settings, 2, tmp_path / "group.log", max_restarts=kills)
    killed = []
    try:
        for run in range(kills):
            produce_records(
                group_settings.bootstrap_servers,
                group_settings.events_topic,
                stream.records[run * chunk : (run + 1) * chunk],
            )
            target = (store.latest_version() or 0) + rng.randint(1, 3)
            wait_for(lambda: (store.latest_version() or 0) >= target or not group.alive(), 180, what="progress")  # noqa: B023
            time.sleep(rng.uniform(0, 0.05))
            killed.append(group.kill_rank(run % 2))
        produce_records(group_settings.bootstrap_servers, group_settings.events_topic, stream.records[kills * chunk :])
        _wait_for_everything(store, len(stream.records), group)
    finally:
        _stop(group, 2)
    assert None not in killed and len(set(killed)) == kills, "every kill struck a running rank"
    _assert_exactly_once(audit_lineage(store), stream)
    _assert_at_the_end(group_settings, store)


@pytest.mark.timeout(600)
def test_a_lineage_of_two_ranks_resumes_with_three(group_settings, tmp_path):
    stream = crash_stream(events=240, holdout_share=group_settings.holdout_share, seed=9)
    store = CheckpointStore(group_settings.checkpoint_dir)
    half = len(stream.records) // 2
    for nproc, records in ((2, stream.records[:half]), (3, stream.records[half:])):
        group = TrainerGroup(group_settings, nproc, tmp_path / f"group-{nproc}.log")
        try:
            produce_records(group_settings.bootstrap_servers, group_settings.events_topic, records)
            _wait_for_everything(store, half if nproc == 2 else len(stream.records), group)
        finally:
            _stop(group, nproc)
    assert "rank 2 reads partitions [2] of 3" in group.log()
    assert "resuming from version" in group.log()
    _assert_exactly_once(audit_lineage(store), stream)
    _assert_at_the_end(group_settings, store)
