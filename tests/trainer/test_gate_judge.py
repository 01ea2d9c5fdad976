"""The holdout window and the gatekeeper with the tiny real BERT: cached scores are the scores,
the live model gets its candidate weights back, and the window survives a save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.text.learner import LearnerConfig, OnlineLearner
from streamtune.modeling.weights import trainable_state
from streamtune.testing.events import synthetic_events
from streamtune.testing.text_family import text_family
from streamtune.trainer.gate.decision import QualityGate
from streamtune.trainer.gate.holdout import HoldoutWindow
from streamtune.trainer.gate.judge import Gatekeeper
from streamtune.trainer.token_rows import RowFormat


@pytest.fixture
def family(tiny_model_dir):
    return text_family(tiny_model_dir, LearnerConfig(1e-2))


def window(tokenizer, capacity=16):
    return HoldoutWindow(capacity, RowFormat(32, len(tokenizer), True, tokenizer.pad_token_id))


def add_events(holdout, tokenizer, events):
    inputs = encode_pairs(tokenizer, [e["text"] for e in events], [e["context"] for e in events], 32)
    holdout.add(inputs, np.arange(len(events)), np.array([e["label"] for e in events], dtype=np.float32))
    return inputs


def train(learner, tokenizer, events):
    inputs = encode_pairs(tokenizer, [e["text"] for e in events], [e["context"] for e in events], 32)
    learner.train_step(inputs, torch.tensor([float(e["label"]) for e in events]))


def test_window_keeps_the_newest_in_order_and_round_trips(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    holdout = window(tokenizer, capacity=4)
    events = synthetic_events(6, seed=1)
    add_events(holdout, tokenizer, events)
    assert len(holdout) == 4
    assert holdout.labels().tolist() == [float(e["label"]) for e in events[2:]]
    restored = window(tokenizer, capacity=3)  # a smaller window after a restart keeps the newest
    restored.load_state(holdout.state())
    assert restored.labels().tolist() == [float(e["label"]) for e in events[3:]]
    (original,) = holdout.batches(holdout.slots()[1:])
    (reloaded,) = restored.batches()
    assert reloaded.inputs["input_ids"].tolist() == original.inputs["input_ids"].tolist()


def test_cached_published_scores_equal_fresh_scores_and_the_candidate_is_put_back(family):
    tokenizer, learner = family.tokenizer, family.learner
    holdout = family.holdout_window(16)
    gatekeeper = Gatekeeper(QualityGate(1.0, 1.0, 0.0, 4, 3), holdout)
    gatekeeper.set_published(family.snapshot())
    first, second = synthetic_events(8, seed=2, prefix="a"), synthetic_events(6, seed=3, prefix="b")
    add_events(holdout, tokenizer, first)

    train(learner, tokenizer, synthetic_events(8, seed=4))
    candidate = family.snapshot()
    verdict = gatekeeper.judge(family, candidate)
    assert verdict.decision.publish
    gatekeeper.accept(verdict, candidate)

    add_events(holdout, tokenizer, second)  # new rows: only these need the published weights scored
    train(learner, tokenizer, synthetic_events(8, seed=5))
    candidate = family.snapshot()
    verdict = gatekeeper.judge(family, candidate)

    # The live model holds the candidate again after the published weights were swapped in.
    live = trainable_state(learner.model, "full")
    assert all(torch.equal(candidate.weights[name], tensor) for name, tensor in live.items())
    fresh_candidate = np.concatenate([family.score(batch) for batch in holdout.batches()])
    assert np.allclose(verdict.candidate_scores, fresh_candidate, atol=1e-6)
    learner.model.load_state_dict(gatekeeper.published_state.weights)
    fresh_published = np.concatenate([family.score(batch) for batch in holdout.batches()])
    assert np.allclose(holdout.scores("published"), fresh_published, atol=1e-6)
    assert verdict.figures["holdout_examples"] == 14


def test_l2sp_keeps_the_weights_closer_to_the_base(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    events = synthetic_events(64, seed=9)
    distances = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        model = wrap_for_tuning(load_base_model(tiny_model_dir), TuningSpec(tuning="full"))
        start = {name: tensor.clone() for name, tensor in trainable_state(model, "full").items()}
        learner = OnlineLearner(model, torch.device("cpu"), LearnerConfig(1e-2, l2sp_weight=weight))
        for index in range(0, 64, 8):
            train(learner, tokenizer, events[index : index + 8])
        end = trainable_state(model, "full")
        moved = [end[name] - start[name] for name in start if start[name].is_floating_point()]
        distances[weight] = sum(float((delta**2).sum()) for delta in moved)
    assert distances[10.0] < 0.5 * distances[0.0], distances
