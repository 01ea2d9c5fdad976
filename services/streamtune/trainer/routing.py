"""Where each row of a batch goes: duplicates are skipped, held-out events (a stable hash share)
only feed the gate's window, the rest is trained."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from streamtune.ingest.training_batch import TrainingBatch
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.holdout import is_holdout


class Routes(NamedTuple):
    """Row indices of a batch: fresh (not a duplicate), held out, and to train."""

    fresh: np.ndarray
    held_out: np.ndarray
    to_train: np.ndarray

    def duplicates(self, batch: TrainingBatch) -> int:
        return len(batch) - int(self.fresh.size)


def route(batch: TrainingBatch, recent: RecentIds, holdout_share: float) -> Routes:
    """Route the batch's rows; every id not seen before is added to ``recent``."""
    fresh, held_out, to_train = [], [], []
    for row, event_id in enumerate(batch.event_ids):
        if not recent.add(event_id):
            continue
        fresh.append(row)
        (held_out if is_holdout(event_id, holdout_share) else to_train).append(row)
    return Routes(*(np.array(rows, dtype=np.int64) for rows in (fresh, held_out, to_train)))
