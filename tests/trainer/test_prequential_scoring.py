"""Every fresh event is scored exactly once before it is learned, in both scoring paths: from the
training step's own forward pass (no dropout, the default) or from a separate pass (dropout)."""

from __future__ import annotations

import json

import pytest

from streamtune.testing.events import synthetic_events
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.service import TrainerService

pytestmark = pytest.mark.slow  # a trainer on the real broker: a few seconds


@pytest.mark.parametrize("train_dropout", [False, True])
def test_each_fresh_event_is_scored_once_before_training(settings, tmp_path, train_dropout):
    settings = settings.model_copy(
        update={
            "train_dropout": train_dropout,
            "holdout_share": 0.2,  # held-out rows are scored by a pass of their own
            "replay_fraction": 0.5,  # replayed rows ride along in the step but are never scored
            "gate_min_examples": 10_000,  # the gate lets the version out: this test is about scoring
        }
    )
    events = synthetic_events(48, seed=3, prefix=f"preq-{train_dropout}")
    events += events[:8]  # duplicates: skipped, not scored
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(event) + "\n" for event in events))

    trainer = TrainerService(settings).setup()
    assert trainer.family.learner.step_scores_are_predictions == (not train_dropout)
    manifest = trainer.bootstrap(history)

    held_out = sum(is_holdout(event["event_id"], settings.holdout_share) for event in events[:48])
    assert 0 < held_out < 48
    assert manifest.examples_seen == 48 - held_out
    assert manifest.metrics["prequential_examples"] == 48  # trained and held out, once each
    assert 0 < manifest.metrics["prequential_logloss"] < 5
