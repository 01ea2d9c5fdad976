"""Snapshots and deltas: a server applying the chain holds exactly the trainer's tables."""

from __future__ import annotations

import copy

import numpy as np
import torch

from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.versions import applied_copy, apply_delta, export_delta, export_snapshot, load_snapshot
from tests.modeling.hybrid.streams import taste_stream

CONFIG = HybridConfig(use_text=False, user_rows=32, item_rows=24, expire_after=400, sparse_lr=0.1)


def assert_same_model(served: HybridModel, trained: HybridModel) -> None:
    assert set(served.mappings) == set(trained.mappings)
    for space, mapping in served.mappings.items():  # users, items and, with text, words
        assert dict(mapping.items()) == dict(trained.mappings[space].items())
        mine, theirs = served.tables[space], trained.tables[space]
        rows = [row for _, row in mapping.items()]
        torch.testing.assert_close(mine.weights[rows], theirs.weights[rows])
        torch.testing.assert_close(mine.counts[rows], theirs.counts[rows])
    torch.testing.assert_close(served.scorer.state_dict(), trained.scorer.state_dict())


def test_a_delta_chain_reproduces_the_trainer_tables_and_scores():
    events = taste_stream(1200, users=50, items=30)  # more users than rows: evictions happen
    learner = HybridLearner(HybridModel(CONFIG))
    learner.learn(events[:100])
    served = load_snapshot(copy.deepcopy(export_snapshot(learner.model)))
    sizes = []
    for start in range(100, 1200, 10):
        learner.learn(events[start : start + 10])
        if start == 600:
            learner.forget_user(events[start]["user_id"])
        delta = export_delta(learner.model)
        sizes.append(int(delta["users"]["rows"].numel()))
        served = applied_copy(served, copy.deepcopy(delta))
    assert_same_model(served, learner.model)
    probe = taste_stream(50, seed=1)
    np.testing.assert_allclose(served.predict(probe).probabilities, learner.predict(probe).probabilities)
    assert max(sizes) <= 10 + 1  # touched rows (batch + a forgotten one), not the whole table


def test_a_forgotten_user_leaves_no_row_in_the_served_model():
    learner = HybridLearner(HybridModel(CONFIG))
    learner.learn(taste_stream(300))
    served = load_snapshot(export_snapshot(learner.model))
    row = served.users.row("u7")
    assert row >= 0 and learner.forget_user("u7")
    apply_delta(served, export_delta(learner.model))
    assert "u7" not in served.users
    assert not served.user_table.weights[row].any() and not served.user_table.counts[row].any()
    assert "u7" not in export_snapshot(learner.model)["users"]["keys"]


def test_a_snapshot_round_trip_is_exact():
    learner = HybridLearner(HybridModel(CONFIG))
    learner.learn(taste_stream(500))
    assert_same_model(load_snapshot(export_snapshot(learner.model)), learner.model)
