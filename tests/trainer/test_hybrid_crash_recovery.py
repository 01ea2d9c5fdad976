"""SIGKILL the hybrid trainer at random moments: exactly-once still holds across snapshots and
deltas, and a restart resumes with the optimizer state the newest version persisted (Adagrad
accumulators, AdamW moments, admission counters), not a cold optimizer. A model process that
dies under a running trainer stops it with a clear error, and the restart loses nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.modeling.hybrid import trainer_state
from streamtune.testing.crash_harness import (
    CrashPlan,
    crash_stream,
    produce_records,
    published_records,
    run_crash_replay,
)
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess
from streamtune.trainer.service import TrainerService
from streamtune.trainer.versions.files import family_state, read_stream_state
from streamtune.trainer.versions.lineage import audit_lineage

pytestmark = pytest.mark.slow

KILLS = 4


def hybrid_replay(settings, **overrides):
    """A hybrid trainer in small batches, its model in a process of its own, every candidate
    published: the accounting is under test, not whether the tiny model improves."""
    return settings.model_copy(
        update={
            "model_kind": "hybrid",
            "model_process": "on",
            "batch_size": 8,
            "max_batch_latency_ms": 100,
            "keep_versions": 100_000,
            "gate_tolerance": 1e6,
            "gate_auc_tolerance": 1.0,
            "holdout_share": 0.1,
            "kafka_session_timeout_ms": 3000,
            **overrides,
        }
    )


def test_sigkill_during_a_hybrid_replay_loses_and_repeats_nothing(settings, tmp_path):
    # Each kill takes the trainer's model process with it.
    settings = hybrid_replay(settings, publish_max_share=0.0, snapshot_every=3)  # a version per batch
    stream = crash_stream(events=240, holdout_share=settings.holdout_share, seed=12)
    report = run_crash_replay(settings, stream, CrashPlan(kills=KILLS, seed=12), log_dir=tmp_path)

    assert report.kills == KILLS and report.kills_mid_stream >= 2
    assert report.lineage_complete
    assert report.lost == [], f"{len(report.lost)} events never trained"
    assert report.duplicated == {}, f"events trained twice: {report.duplicated}"
    assert report.unexpected == []
    assert report.trained_events == len(stream.expected)
    store = CheckpointStore(settings.checkpoint_dir)
    assert any(store.read_manifest(v).is_delta for v in store.versions())

    persisted = trainer_state.decode(family_state(read_stream_state(store.path_of(store.latest_version()))))
    # The replay ran with a model process (the default on two cores); the resumed family is
    # read here, in this process.
    resumed = TrainerService(settings.model_copy(update={"model_process": "off"})).setup()
    try:
        state = resumed.family.learner.trainer_state()
    finally:
        resumed.stream.close()
    assert persisted is not None and state["clock"] == persisted["clock"] > 0
    assert state["mappings"] == persisted["mappings"]
    for space, sparse in persisted["accumulators"].items():
        accumulators = trainer_state.expand(sparse, state["accumulators"][space])
        assert torch.equal(state["accumulators"][space], accumulators)
        assert (accumulators > 0.1).any(), "the persisted accumulators are warm, not initial"
    saved, loaded = persisted["dense_optimizer"]["state"], state["dense_optimizer"]["state"]
    assert saved.keys() == loaded.keys() and saved
    for index, moments in saved.items():
        for name, tensor in moments.items():
            assert torch.equal(loaded[index][name], tensor), (index, name)


def test_a_model_process_that_dies_stops_the_trainer_and_its_restart_loses_nothing(settings, tmp_path):
    settings = hybrid_replay(settings)
    stream = crash_stream(events=160, holdout_share=settings.holdout_share, seed=13)
    half = len(stream.records) // 2
    store = CheckpointStore(settings.checkpoint_dir)
    produce_records(settings.bootstrap_servers, settings.events_topic, stream.records[:half])
    trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
    try:
        wait_for(lambda: store.latest_version() is not None, 120, what="a first version")
        model_process = _children(trainer.process.pid)
        assert len(model_process) == 1, model_process
        os.kill(model_process[0], signal.SIGKILL)
        produce_records(settings.bootstrap_servers, settings.events_topic, stream.records[half:])
        wait_for(lambda: not trainer.alive(), 60, what="the trainer to stop")
    finally:
        trainer.kill()
    assert trainer.process.returncode == 1
    assert "the model process is gone (killed by SIGKILL)" in trainer.log()

    restarted = ServiceProcess("train", settings, tmp_path / "restarted.log")
    try:
        wait_for(lambda: published_records(store) >= len(stream.records), 120, what="every record in a version")
    finally:
        assert restarted.stop() == 0, restarted.log()[-3000:]
    trained = Counter(audit_lineage(store).trained)
    assert set(trained) == stream.expected and max(trained.values()) == 1


def _children(pid: int) -> list[int]:
    """Processes ``pid`` started (any of its threads may have)."""
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]
