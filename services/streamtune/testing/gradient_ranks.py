"""A tiny model stepped by ranks of a real gloo group (processes started by
``torch.multiprocessing``), for the tests of :mod:`streamtune.distributed.gradients`.

It lives in the package, not in ``tests/``, so that spawned processes can import it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from streamtune.distributed.gradients import GradientAverager, broadcast_parameters

ROWS = torch.tensor([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
TARGETS = torch.tensor([1.0, 0.0, 1.0])
STEPS = 3


def linear_model(seed: int) -> tuple[torch.nn.Linear, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(2, 1)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, rows: torch.Tensor, targets: torch.Tensor) -> None:
    """One optimizer step; a rank without rows steps on the gradients the group averages in."""
    optimizer.zero_grad()
    if len(rows):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(rows).squeeze(-1), targets)
        loss.backward()
    optimizer.step()


def alone() -> dict[str, torch.Tensor]:
    """The weights after ``STEPS`` steps of one process on every row."""
    model, optimizer = linear_model(seed=0)
    for _ in range(STEPS):
        step(model, optimizer, ROWS, TARGETS)
    return model.state_dict()


def run_rank(rank: int, store_path: str, split: list[int], out: str) -> None:
    """Rank ``rank`` of two: steps on its ``split`` share of the rows, saves its weights."""
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    model, optimizer = linear_model(seed=rank)  # different on purpose: the broadcast equalises them
    broadcast_parameters(model)
    averager = GradientAverager(optimizer)
    mine = list(range(split[0])) if rank == 0 else list(range(split[0], split[0] + split[1]))
    for _ in range(STEPS):
        averager.share = len(mine) / sum(split)
        step(model, optimizer, ROWS[mine], TARGETS[mine])
    torch.save(model.state_dict(), Path(out) / f"rank{rank}.pt")
    # Both ranks done before either tears down: a rank whose peer closed its gloo connection
    # first can abort in the teardown ("terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()
