"""The hybrid learner's trainer-only state as flat arrays, for ``stream_state.safetensors``.

Saved with every version under ``family.`` (see :mod:`streamtune.trainer.versions.files`), read
only by a trainer resuming from that version, never by ``serve``: the Adagrad accumulators of
each table (the rows that left their initial value, and their values), and in one serialised blob
the AdamW moments of the dense part, the admission counters, last-seen clocks and row
assignments of every key space, and the learner's clock. The blob is ``torch.save`` bytes read
back with ``weights_only=True`` (plain containers and tensors only, no code).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

ACCUMULATORS = "accumulators."
INITIAL_ACCUMULATOR = 0.1  # SparseAdagrad's default: a fresh or freed row's accumulators
LEARNER = "learner"


def encode(state: dict[str, Any], initial: float = INITIAL_ACCUMULATOR) -> dict[str, np.ndarray]:
    """:meth:`HybridLearner.trainer_state` → arrays. Accumulators are kept only for rows that
    left their initial value (``<space>.rows`` and ``<space>.values``): a table's budget is
    far larger than the rows in use, and this file is written with every version."""
    arrays: dict[str, np.ndarray] = {}
    for space, accumulators in state["accumulators"].items():
        if isinstance(accumulators, tuple):  # already sparse (as decode() gives it)
            rows, values = accumulators
        else:
            rows = torch.nonzero((accumulators != initial).any(1)).flatten()
            values = accumulators[rows]
        arrays[f"{ACCUMULATORS}{space}.rows"] = rows.numpy()
        arrays[f"{ACCUMULATORS}{space}.values"] = values.numpy()
    rest = {key: value for key, value in state.items() if key != "accumulators"}
    buffer = io.BytesIO()
    torch.save(rest, buffer)
    arrays[LEARNER] = np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()
    return arrays


def decode(arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Arrays written by :func:`encode` → the learner's state, accumulators as
    ``{space: (rows, values)}`` (:func:`expand` makes whole tables of them); None when there
    are none (a version written by another family, or before this state was kept)."""
    if LEARNER not in arrays:
        return None
    state: dict[str, Any] = torch.load(io.BytesIO(arrays[LEARNER].tobytes()), weights_only=True)
    spaces = {key[len(ACCUMULATORS) :].rsplit(".", 1)[0] for key in arrays if key.startswith(ACCUMULATORS)}
    state["accumulators"] = {
        space: (
            torch.from_numpy(np.array(arrays[f"{ACCUMULATORS}{space}.rows"])),
            torch.from_numpy(np.array(arrays[f"{ACCUMULATORS}{space}.values"])),
        )
        for space in spaces
    }
    return state


def expand(
    sparse: tuple[torch.Tensor, torch.Tensor], like: torch.Tensor, initial: float = INITIAL_ACCUMULATOR
) -> torch.Tensor:
    """Whole accumulators shaped as ``like``: the saved rows, every other row initial."""
    rows, values = sparse
    full = torch.full_like(like, initial)
    full[rows] = values
    return full


def held_rows(
    sparse: tuple[torch.Tensor, torch.Tensor], width: int, initial: float = INITIAL_ACCUMULATOR
) -> torch.Tensor:
    """The accumulators of every row up to the last saved one (the others initial): what
    :meth:`HybridLearner.load_trainer_state` takes; rows above keep their initial value."""
    rows, values = sparse
    held = torch.full((int(rows.max()) + 1 if rows.numel() else 0, width), initial, dtype=values.dtype)
    held[rows] = values
    return held
