"""SIGKILL the hybrid trainer at random moments: exactly-once still holds across snapshots and
deltas, and a restart resumes with the optimizer state the newest version persisted (Adagrad
accumulators, AdamW moments, admission counters), not a cold optimizer."""

from __future__ import annotations

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.modeling.hybrid import trainer_state
from streamtune.testing.crash_harness import CrashPlan, crash_stream, run_crash_replay
from streamtune.trainer.service import TrainerService
from streamtune.trainer.versions.files import family_state, read_stream_state

pytestmark = pytest.mark.slow

KILLS = 4


def test_sigkill_during_a_hybrid_replay_loses_and_repeats_nothing(settings, tmp_path):
    settings = settings.model_copy(
        update={
            "model_kind": "hybrid",
            "batch_size": 8,
            "publish_max_share": 0.0,  # a version per batch, backlog or not
            "max_batch_latency_ms": 100,
            "snapshot_every": 3,
            "keep_versions": 100_000,
            "gate_tolerance": 1e6,
            "gate_auc_tolerance": 1.0,
            "holdout_share": 0.1,
            "kafka_session_timeout_ms": 3000,
            "model_process": "on",  # each kill takes the trainer's model process with it
        }
    )
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
