"""The holdout: a share of the stream that is never trained on, kept as a rolling window.

Which events are held out is decided by a hash of the event id, so the choice is the same in
every process, after every restart and for every re-delivery, and a held-out event can never be
trained on by a later run. The window keeps the newest held-out examples; the quality gate
scores candidate and published weights on it. It is saved in every version, so the gate keeps
its evidence across restarts.

The window's length is a trade-off: under genuine concept drift the gate only lets an adapted
model out once enough new-concept examples fill the window, while a short poisoned stretch can
never outvote the clean examples of a long window.

Each row carries its user's pseudonym tag (saved with the window), so a request to forget a user
reaches the held-out examples of every version the trainer loads (:meth:`HoldoutWindow.forget_users`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from streamtune.ingest.training_batch import TrainingBatch
from streamtune.trainer.dedupe import id_hashes
from streamtune.trainer.token_rows import RowFormat, TokenRows

_HOLDOUT_SALT = b"holdout"
_HASH_SPACE = float(2**64)
# Rows per scoring batch over the window (a compiled model pads them to its static shapes).
HOLDOUT_BATCH_ROWS = 64


def is_holdout(event_id: str, share: float) -> bool:
    """Whether ``event_id`` belongs to the holdout (a stable ``share`` of all ids).

    >>> ids = [f"event-{i}" for i in range(10_000)]
    >>> round(sum(is_holdout(i, 0.05) for i in ids) / len(ids), 2)
    0.05
    >>> is_holdout("event-7", 0.0)
    False
    """
    return held_out_flags((event_id,), share)[0]


def held_out_flags(event_ids: Sequence[str], share: float) -> list[bool]:
    """:func:`is_holdout` of each id, in one loop."""
    if share <= 0:
        return [False] * len(event_ids)
    return [key / _HASH_SPACE < share for key in id_hashes(event_ids, _HOLDOUT_SALT)]


class HoldoutWindow:
    """The newest ``capacity`` held-out examples, plus cached scores of fixed weights on them.

    Scores of the published (and reference) weights are cached per example under a name: they
    stay valid until those weights change, so each gate decision only scores them on examples
    that arrived since the last decision.
    """

    def __init__(self, capacity: int, form: RowFormat) -> None:
        self._rows = TokenRows(capacity, form)
        self.capacity = capacity
        self._size = 0
        self._next = 0  # ring position of the next write
        self._cached: dict[str, np.ndarray] = {}
        self._users = np.zeros(capacity, dtype=np.int64)  # pseudonym tag of each slot's user

    def __len__(self) -> int:
        return self._size

    def slots(self) -> np.ndarray:
        """Occupied slots, oldest first."""
        if self._size < self.capacity:
            return np.arange(self._size)
        return np.roll(np.arange(self.capacity), -self._next)

    def add(
        self, inputs: dict[str, torch.Tensor], rows: np.ndarray, labels: np.ndarray, users: np.ndarray | None = None
    ) -> None:
        """Append rows (``users``: each row's pseudonym tag, default none), evicting the oldest."""
        tags = np.zeros(len(rows), dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
        for row, label, tag in zip(rows.tolist(), labels.tolist(), tags.tolist(), strict=True):
            slot = self._next
            self._rows.put(np.array([slot]), inputs, np.array([row]), np.array([label]))
            self._users[slot] = tag
            for scores in self._cached.values():
                scores[slot] = np.nan
            self._next = (self._next + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)

    def add_batch(self, batch: TrainingBatch, rows: np.ndarray) -> None:
        """Append the given rows of ``batch`` with their labels and users."""
        self.add(batch.inputs, rows, batch.labels.numpy()[rows], batch.user_tags()[rows])

    def lengths(self, slots: np.ndarray) -> np.ndarray:
        """Tokens in the rows at ``slots``."""
        return self._rows.lengths[slots]

    def labels(self) -> np.ndarray:
        return self._rows.labels[self.slots()].astype(np.float64)

    def batches(self, slots: np.ndarray | None = None, size: int = HOLDOUT_BATCH_ROWS) -> Iterator[TrainingBatch]:
        """Batches of the rows at ``slots`` (default: the whole window, oldest first)."""
        slots = self.slots() if slots is None else slots
        for start in range(0, len(slots), size):
            yield TrainingBatch.of_inputs(*self._rows.batch(slots[start : start + size]))

    def _cache(self, name: str) -> np.ndarray:
        return self._cached.setdefault(name, np.full(self.capacity, np.nan, dtype=np.float64))

    def unscored_slots(self, name: str) -> np.ndarray:
        """Slots, oldest first, with no cached score under ``name``."""
        order = self.slots()
        return order[np.isnan(self._cache(name)[order])]

    def set_scores(self, name: str, scores: np.ndarray, slots: np.ndarray | None = None) -> None:
        """Cache scores under ``name`` (for ``slots``, default the whole window in order)."""
        self._cache(name)[self.slots() if slots is None else slots] = scores

    def scores(self, name: str) -> np.ndarray:
        """Cached scores under ``name``, oldest first (NaN where unknown)."""
        return self._cache(name)[self.slots()]

    def forget_scores(self, name: str) -> None:
        """The weights cached under ``name`` changed: every cached score is stale."""
        self._cache(name)[:] = np.nan

    def forget_users(self, tags: np.ndarray) -> int:
        """Drop the rows of the users with these pseudonym tags, keeping the others in order
        (with their cached scores); returns how many were dropped."""
        wanted = np.asarray(tags, dtype=np.int64)
        order = self.slots()
        keep = order[~np.isin(self._users[order], wanted[wanted != 0])]
        dropped = len(order) - len(keep)
        if dropped:
            target = np.arange(len(keep))
            self._rows.copy_rows(self._rows, keep, target)  # fancy indexing copies the source first
            self._users[target] = self._users[keep]
            for scores in self._cached.values():
                scores[target] = scores[keep]
            self._size = len(keep)
            self._next = self._size % self.capacity
        return dropped

    def state(self) -> dict[str, np.ndarray]:
        slots = self.slots()
        return {**self._rows.state(slots, "holdout"), "holdout.users": self._users[slots].copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the window with one saved by :meth:`state` (newest rows kept if it shrank)."""
        saved = len(state.get("holdout.lengths", ()))
        self._size = self._next = 0
        for scores in self._cached.values():
            scores[:] = np.nan
        if not saved:
            return
        keep = min(saved, self.capacity)
        trimmed = {key: value[saved - keep :] for key, value in state.items() if key.startswith("holdout.")}
        self._rows.load_state(trimmed, "holdout", np.arange(keep))
        # Versions written before user tags existed have none: their rows cannot be forgotten.
        self._users[:keep] = trimmed.get("holdout.users", np.zeros(keep, dtype=np.int64))
        self._size = keep
        self._next = keep % self.capacity
