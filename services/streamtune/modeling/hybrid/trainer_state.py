"""The hybrid learner's trainer-only state as flat arrays, for ``stream_state.safetensors``.

Saved with every version under ``family.`` (see :mod:`streamtune.trainer.versions.files`), read
only by a trainer resuming from that version, never by ``serve``: the Adagrad accumulators of
each table (one float array per key space, rows as in the table), and in one serialised blob
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
LEARNER = "learner"


def encode(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """:meth:`HybridLearner.trainer_state` → arrays."""
    arrays = {f"{ACCUMULATORS}{space}": tensor.numpy() for space, tensor in state["accumulators"].items()}
    rest = {key: value for key, value in state.items() if key != "accumulators"}
    buffer = io.BytesIO()
    torch.save(rest, buffer)
    arrays[LEARNER] = np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()
    return arrays


def decode(arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Arrays written by :func:`encode` → the learner's state; None when there are none (a
    version written by another family, or before this state was kept)."""
    if LEARNER not in arrays:
        return None
    state: dict[str, Any] = torch.load(io.BytesIO(arrays[LEARNER].tobytes()), weights_only=True)
    state["accumulators"] = {
        key[len(ACCUMULATORS) :]: torch.from_numpy(np.array(value))
        for key, value in arrays.items()
        if key.startswith(ACCUMULATORS)
    }
    return state
