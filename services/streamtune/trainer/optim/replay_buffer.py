"""A bounded reservoir of past training examples, mixed into each micro-batch.

Rehearsing a uniform sample of the past while learning the present is the simplest strong guard
against catastrophic forgetting in online learning (Chaudhry et al., "On Tiny Episodic Memories
in Continual Learning", 2019, arXiv:1902.10486). Reservoir sampling keeps every example seen so
far in the buffer with equal probability ``capacity / seen`` without knowing the stream's length
(Vitter, "Random sampling with a reservoir", ACM TOMS 11(1), 1985 — Algorithm R).

The buffer lives in memory only: after a restart it refills from the stream. Each row is tagged
with its user's pseudonym tag (:func:`streamtune.privacy.user_tag`, 0 for none), so a user's
examples can be dropped on request (:meth:`ReplayBuffer.forget_users`). Replayed examples
are a deliberate second use of past events, not stream events: they are not counted in
``examples_seen`` nor listed in a version's trained events.
"""

from __future__ import annotations

import numpy as np
import torch

from streamtune.trainer.token_rows import RowFormat, TokenRows


class ReplayBuffer:
    """Reservoir of tokenized examples bounded by a count and a byte budget.

    Parameters
    ----------
    capacity
        Most examples held.
    max_bytes
        Most bytes the token table may take; lowers ``capacity`` if needed.
    form
        Shape of the rows (:class:`~streamtune.trainer.token_rows.RowFormat`).
    seed
        Seed of the sampling generator (reproducible runs).
    """

    def __init__(self, capacity: int, max_bytes: int, form: RowFormat, *, seed: int = 0) -> None:
        self.capacity = max(0, min(capacity, max_bytes // form.bytes_per_row))
        self._rows = TokenRows(self.capacity, form)
        self._added_at = np.zeros(self.capacity, dtype=np.int64)  # arrival number of each slot
        self._users = np.zeros(self.capacity, dtype=np.int64)  # pseudonym tag of each slot's user
        self._size = 0
        self.seen = 0
        self._random = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Memory held by the buffer's arrays (allocated up front, so constant)."""
        return self._rows.nbytes + self._added_at.nbytes + self._users.nbytes

    def add(
        self, inputs: dict[str, torch.Tensor], rows: np.ndarray, labels: np.ndarray, users: np.ndarray | None = None
    ) -> None:
        """Offer the given rows of a trained batch to the reservoir (Algorithm R); ``users``
        holds the pseudonym tag of each row's user (default: none)."""
        if self.capacity == 0:
            return
        tags = np.zeros(len(rows), dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
        for row, label, tag in zip(rows.tolist(), labels.tolist(), tags.tolist(), strict=True):
            self.seen += 1
            if self._size < self.capacity:
                slot = self._size
                self._size += 1
            else:
                slot = int(self._random.integers(self.seen))
                if slot >= self.capacity:
                    continue
            self._rows.put(np.array([slot]), inputs, np.array([row]), np.array([label]))
            self._added_at[slot] = self.seen
            self._users[slot] = tag

    def sample(self, count: int) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        """``count`` distinct examples drawn uniformly (fewer if the buffer is smaller)."""
        count = min(count, self._size)
        if count <= 0:
            return None
        slots = self._random.choice(self._size, size=count, replace=False)
        return self._rows.batch(slots)

    def mark(self) -> int:
        """A point in the arrival order, for :meth:`forget_since`."""
        return self.seen

    def forget_since(self, mark: int) -> int:
        """Drop every example that arrived after ``mark`` (training on them was undone).

        Examples they displaced are not brought back; the reservoir simply continues from
        ``mark`` arrivals. Returns how many were dropped.
        """
        dropped = self._drop(np.flatnonzero(self._added_at[: self._size] > mark))
        self.seen = min(self.seen, mark)
        return dropped

    def forget_users(self, tags: np.ndarray) -> int:
        """Drop every example of the users with these pseudonym tags; returns how many."""
        wanted = np.asarray(tags, dtype=np.int64)
        wanted = wanted[wanted != 0]  # 0 means "no user": never a request
        return self._drop(np.flatnonzero(np.isin(self._users[: self._size], wanted)))

    def _drop(self, slots: np.ndarray) -> int:
        """Remove ``slots``, filling each hole with the last occupied row."""
        for slot in sorted(slots.tolist(), reverse=True):
            last = self._size - 1
            if slot != last:
                self._rows.copy_rows(self._rows, np.array([last]), np.array([slot]))
                self._added_at[slot] = self._added_at[last]
                self._users[slot] = self._users[last]
            self._size -= 1
        return len(slots)

    def clear(self) -> None:
        self._size = 0
        self.seen = 0
