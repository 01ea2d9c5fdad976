"""The gate's holdout window in raw-field form, for families that score events, not tokens.

:class:`~streamtune.trainer.gate.holdout.HoldoutWindow` keeps compact token rows; the hybrid
family scores an event from its ids and texts, so its window keeps those fields instead. The
score cache, ring order and user tags work as in the token window (this is a subclass that
replaces only the row storage); the saved state is the same keys' idea: ``holdout.*`` arrays,
the raw fields as one UTF-8 JSON array (no tokenizer needed to read it back).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import torch

from streamtune.ingest.training_batch import TrainingBatch
from streamtune.trainer.gate.holdout import HOLDOUT_BATCH_ROWS, HoldoutWindow


class RawHoldoutWindow(HoldoutWindow):
    """The newest ``capacity`` held-out events as (text, context, user pseudonym, item id, label)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._size = 0
        self._next = 0
        self._cached: dict[str, np.ndarray] = {}
        self._users = np.zeros(capacity, dtype=np.int64)
        self._labels = np.zeros(capacity, dtype=np.float32)
        self._fields: list[tuple[str, str | None, str | None, str | None]] = [("", None, None, None)] * capacity

    def add_batch(self, batch: TrainingBatch, rows: np.ndarray) -> None:
        """Append the given rows of ``batch`` (raw fields, label, user tag), evicting the oldest."""
        labels, tags = batch.labels.numpy(), batch.user_tags()
        for row in rows.tolist():
            slot = self._next
            self._fields[slot] = (
                batch.texts[row],
                batch.contexts[row] if batch.contexts else None,
                batch.user_ids[row] if batch.user_ids else None,
                batch.item_ids[row] if batch.item_ids else None,
            )
            self._labels[slot] = labels[row]
            self._users[slot] = tags[row]
            for scores in self._cached.values():
                scores[slot] = np.nan
            self._next = (self._next + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)

    def add(self, inputs, rows, labels, users=None) -> None:
        raise TypeError("a raw-field holdout window takes whole batches: use add_batch")

    def lengths(self, slots: np.ndarray) -> np.ndarray:
        """Characters of item text per row (the gate sorts by it to batch similar rows)."""
        return np.array([len(self._fields[slot][0]) for slot in slots.tolist()], dtype=np.int64)

    def labels(self) -> np.ndarray:
        return self._labels[self.slots()].astype(np.float64)

    def batches(self, slots: np.ndarray | None = None, size: int = HOLDOUT_BATCH_ROWS) -> Iterator[TrainingBatch]:
        slots = self.slots() if slots is None else slots
        for start in range(0, len(slots), size):
            chosen = slots[start : start + size].tolist()
            texts, contexts, users, items = (
                list(column) for column in zip(*(self._fields[s] for s in chosen), strict=True)
            )
            yield TrainingBatch(
                generation=0,
                inputs={},
                labels=torch.from_numpy(self._labels[chosen].copy()),
                event_ids=[""] * len(chosen),
                offsets={},
                user_ids=users,
                texts=texts,
                contexts=contexts,
                item_ids=items,
            )

    def forget_users(self, tags: np.ndarray) -> int:
        """Drop the rows of these users (pseudonym tags), keeping the others' order and scores."""
        wanted = np.asarray(tags, dtype=np.int64)
        order = self.slots()
        keep = order[~np.isin(self._users[order], wanted[wanted != 0])]
        dropped = len(order) - len(keep)
        if dropped:
            target = np.arange(len(keep))
            kept_fields = [self._fields[slot] for slot in keep.tolist()]
            for position, fields in zip(target.tolist(), kept_fields, strict=True):
                self._fields[position] = fields
            for position in range(len(keep), self.capacity):
                self._fields[position] = ("", None, None, None)  # nothing of a forgotten user stays
            self._labels[target] = self._labels[keep]
            self._users[target] = self._users[keep]
            for scores in self._cached.values():
                scores[target] = scores[keep]
            self._size = len(keep)
            self._next = self._size % self.capacity
        return dropped

    def state(self) -> dict[str, np.ndarray]:
        slots = self.slots().tolist()
        encoded = json.dumps([list(self._fields[slot]) for slot in slots]).encode()
        return {
            "holdout.raw": np.frombuffer(encoded, dtype=np.uint8).copy(),
            "holdout.labels": self._labels[slots].copy(),
            "holdout.users": self._users[slots].copy(),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the window with one saved by :meth:`state` (a token window's state, or none,
        reads as empty: its rows cannot be scored by this family)."""
        self._size = self._next = 0
        for scores in self._cached.values():
            scores[:] = np.nan
        if "holdout.raw" not in state:
            return
        rows = json.loads(bytes(state["holdout.raw"]).decode())
        keep = min(len(rows), self.capacity)
        start = len(rows) - keep
        for slot, fields in enumerate(rows[start:]):
            self._fields[slot] = tuple(fields)  # type: ignore[assignment]
        self._labels[:keep] = state["holdout.labels"][start:]
        self._users[:keep] = state["holdout.users"][start:]
        self._size = keep
        self._next = keep % self.capacity


def batch_events(batch: TrainingBatch) -> list[dict[str, object]]:
    """A batch's rows as the hybrid model's events (``user_id`` is already a pseudonym)."""
    size = len(batch.labels)
    users = batch.user_ids or [None] * size
    items = batch.item_ids or [None] * size
    contexts = batch.contexts or [None] * size
    labels = batch.labels.tolist()
    return [
        {
            "user_id": users[row],
            "item_id": items[row],
            "text": batch.texts[row],
            "context": contexts[row],
            "label": labels[row],
        }
        for row in range(size)
    ]


__all__ = ["RawHoldoutWindow", "batch_events"]
