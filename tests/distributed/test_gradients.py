"""Gradients averaged by examples across two real gloo ranks (processes), with no broker: the
group's steps equal one process's steps on all the rows, and a rank without rows stays in step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from streamtune.testing.gradient_ranks import alone, run_rank

pytestmark = pytest.mark.slow  # two processes spawned per case


def _group_weights(tmp_path: Path, split: list[int]) -> list[dict[str, torch.Tensor]]:
    mp.spawn(run_rank, args=(str(tmp_path / "store"), split, str(tmp_path)), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]


@pytest.mark.parametrize("split", [[2, 1], [3, 0]], ids=["uneven", "one-rank-without-rows"])
def test_the_group_steps_as_one_model_on_every_row(tmp_path, split):
    expected = alone()
    for weights in _group_weights(tmp_path, split):
        for name, tensor in expected.items():
            torch.testing.assert_close(weights[name], tensor)
