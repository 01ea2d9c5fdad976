"""Sparse Adagrad on table rows: only the batch's rows (and their accumulators) change."""

from __future__ import annotations

import torch

from streamtune.modeling.hybrid.optimizer import SparseAdagrad
from streamtune.modeling.hybrid.table import EmbeddingRows


def make_table() -> EmbeddingRows:
    table = EmbeddingRows(capacity=6, factors=3, init_std=0.1, generator=torch.Generator().manual_seed(0))
    table.reset(list(range(6)))
    table.take_dirty()
    return table


def test_a_step_touches_only_the_batch_rows():
    table = make_table()
    optimizer = SparseAdagrad(table, lr=0.5)
    before, accumulators = table.weights.clone(), optimizer.accumulators.clone()
    rows = torch.tensor([1, 4, 1, -1])
    optimizer.step(rows, torch.ones(4, 4))
    changed = (table.weights != before).any(1).nonzero().flatten().tolist()
    assert changed == [1, 4]
    assert (optimizer.accumulators != accumulators).any(1).nonzero().flatten().tolist() == [1, 4]
    assert table.take_dirty() == [1, 4]


def test_a_repeated_row_gets_its_summed_gradient():
    table = make_table()
    optimizer = SparseAdagrad(table, lr=1.0, initial_accumulator=0.0)
    start = table.weights[2].clone()
    optimizer.step(torch.tensor([2, 2]), torch.full((2, 4), 0.5))
    # Adagrad's first step with a zero accumulator is lr * g / |g| = lr, in every element.
    torch.testing.assert_close(table.weights[2], start - 1.0)
    torch.testing.assert_close(optimizer.accumulators[2], torch.ones(4))


def test_gather_gives_zeros_for_unknown_rows_and_collects_gradients():
    table = make_table()
    values = table.gather(torch.tensor([0, -1]))
    values.sum().backward()
    assert torch.equal(values[1], torch.zeros(4)) and values.grad is not None


def test_decayed_accumulators_keep_a_busy_row_learning():
    """After many touches plain Adagrad's step has all but vanished; with decay it settles at
    about lr * sqrt(1 - decay)."""
    steps = {}
    for decay in (1.0, 0.9):
        table = make_table()
        optimizer = SparseAdagrad(table, lr=1.0, decay=decay)
        gradient = torch.full((1, 4), 0.5)
        for _ in range(1000):
            optimizer.step(torch.tensor([3]), gradient)
        before = table.weights[3].clone()
        optimizer.step(torch.tensor([3]), gradient)
        steps[decay] = float((before - table.weights[3])[0])
    assert abs(steps[1.0] - 1 / (1001 + 0.4) ** 0.5) < 1e-4
    assert abs(steps[0.9] - 0.1**0.5) < 1e-3
