"""Copies of hybrid tables clone only the rows below the high-water mark, and still equal the
whole table; the trainer state keeps only those rows' accumulators and comes back whole."""

from __future__ import annotations

import torch

from streamtune.modeling.hybrid import HybridConfig, HybridModel
from streamtune.modeling.hybrid.learner import HybridLearner
from streamtune.modeling.hybrid.model_state import copy_model
from streamtune.modeling.hybrid.table import EmbeddingRows

IDS = HybridConfig(use_text=False, user_rows=64, item_rows=64)


def events(count: int, offset: int = 0) -> list[dict]:
    return [
        {"user_id": f"u{(offset + index) % 7}", "item_id": f"i{(offset + index) % 11}", "label": index % 2}
        for index in range(count)
    ]


def test_the_high_water_mark_covers_every_written_row_and_a_clear_does_not_raise_it():
    table = EmbeddingRows(capacity=10, factors=2, init_std=0.1, generator=torch.Generator().manual_seed(0))
    assert table.used == 0
    table.reset([3])
    assert table.used == 4
    table.count(torch.tensor([5, -1]), torch.tensor([1.0, 0.0]))
    assert table.used == 6
    table.clear([9])  # zeros stay zeros: nothing above the mark needs copying
    assert table.used == 6
    table.load_rows(
        {"rows": torch.tensor([7]), "weights": torch.ones(1, 3), "counts": torch.ones(1, 2, dtype=torch.float64)}
    )
    assert table.used == 8


def test_a_copy_of_a_trained_model_equals_it_row_for_row():
    learner = HybridLearner(HybridModel(IDS))
    for start in range(0, 60, 12):
        learner.learn(events(12, start))
    copied = copy_model(learner.model)
    for space, table in learner.model.tables.items():
        assert 0 < table.used < table.capacity
        assert torch.equal(copied.tables[space].weights, table.weights)
        assert torch.equal(copied.tables[space].counts, table.counts)
        assert copied.tables[space].used == table.used
    copied.tables["users"].weights[0] += 1.0  # independent storage
    assert not torch.equal(copied.tables["users"].weights, learner.model.tables["users"].weights)


def test_the_trainer_state_holds_the_used_rows_and_loads_back_whole():
    learner = HybridLearner(HybridModel(IDS))
    for start in range(0, 48, 12):
        learner.learn(events(12, start))
    state = learner.trainer_state()
    for space, accumulators in state["accumulators"].items():
        assert accumulators.shape[0] == learner.model.tables[space].used
    resumed = HybridLearner(copy_model(learner.model))
    resumed.load_trainer_state(state)
    for space, optimizer in learner.sparse_optimizers.items():
        assert torch.equal(resumed.sparse_optimizers[space].accumulators, optimizer.accumulators)
    resumed.learn(events(12, 100))
    learner.learn(events(12, 100))
    for space, table in learner.model.tables.items():
        torch.testing.assert_close(resumed.model.tables[space].weights, table.weights)
