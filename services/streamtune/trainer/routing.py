"""Where each row of a batch goes: duplicates are skipped, held-out events (a stable hash share)
only feed the gate's window, the rest is trained."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from streamtune.ingest.training_batch import TrainingBatch
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.holdout import held_out_flags


class Routes(NamedTuple):
    """Row indices of a batch: fresh (not a duplicate), held out, and to train."""

    fresh: np.ndarray
    held_out: np.ndarray
    to_train: np.ndarray

    def duplicates(self, batch: TrainingBatch) -> int:
        return len(batch) - int(self.fresh.size)


def route(batch: TrainingBatch, recent: RecentIds, holdout_share: float) -> Routes:
    """Route the batch's rows; every id not seen before is added to ``recent``."""
    event_ids = batch.event_ids
    fresh = [row for row, new in enumerate(recent.add_all(event_ids)) if new]
    held_out, to_train = [], []
    for row, held in zip(fresh, held_out_flags([event_ids[row] for row in fresh], holdout_share), strict=True):
        (held_out if held else to_train).append(row)
    return Routes(*(np.array(rows, dtype=np.int64) for rows in (fresh, held_out, to_train)))
