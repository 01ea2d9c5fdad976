"""Remember recently consumed event ids so a re-delivered event is trained once.

Kafka offsets already keep the trainer from reading a record twice; this catches the same
*event* arriving twice as different records (a producer retry without idempotence, an upstream
replay). Ids are kept as 64-bit BLAKE2b hashes in arrival order, so the window is a fixed
8 bytes per id and can be written into every version: after a crash the trainer reloads the
window of the version it resumes from, and a duplicate of an event trained before the crash is
still recognised. With a window of 20,000 ids the chance that two distinct ids in it share a
hash is about 1e-11.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np


def id_hashes(event_ids: Iterable[str], salt: bytes = b"") -> list[int]:
    """A stable (process-independent) unsigned 64-bit hash of each event id. One loop for a
    batch: calls were a third of routing's time per event."""
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    return [from_bytes(blake2b(key.encode("utf-8"), digest_size=8, salt=salt).digest(), "little") for key in event_ids]


def id_hash(event_id: str, salt: bytes = b"") -> int:
    """:func:`id_hashes` of one id."""
    return id_hashes((event_id,), salt)[0]


class RecentIds:
    """The last ``window`` distinct event ids, first in first out.

    Examples
    --------
    >>> recent = RecentIds(window=2)
    >>> recent.add("a"), recent.add("a"), recent.add("b"), recent.add("c")
    (True, False, True, True)
    >>> "a" in recent, "c" in recent
    (False, True)
    >>> RecentIds.from_array(recent.to_array(), window=2).add("b")
    False
    """

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.window = window
        self._order: deque[int] = deque()
        self._members: set[int] = set()
        # to_array() runs with every version, the window is tens of thousands of ids and a
        # version adds a handful: the last array is kept, with what was added and dropped since.
        self._written = np.empty(0, dtype=np.uint64)
        self._added: list[int] = []
        self._dropped = 0

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, event_id: str) -> bool:
        return id_hash(event_id) in self._members

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; False if it is already in the window (a duplicate)."""
        return self.add_all((event_id,))[0]

    def add_all(self, event_ids: Sequence[str]) -> list[bool]:
        """Remember each id in turn; False where it is already in the window (a duplicate, also
        of an id earlier in ``event_ids``)."""
        if self.window == 0:
            return [True] * len(event_ids)
        members, order = self._members, self._order
        fresh = []
        for key in id_hashes(event_ids):
            if key in members:
                fresh.append(False)
                continue
            order.append(key)
            members.add(key)
            self._added.append(key)
            if len(order) > self.window:
                members.discard(order.popleft())
                self._dropped += 1
            fresh.append(True)
        return fresh

    def to_array(self) -> np.ndarray:
        """The hashes, oldest first, as int64 (the bits of the unsigned hash)."""
        if self._added or self._dropped:
            added = np.fromiter(self._added, dtype=np.uint64, count=len(self._added))
            self._written = np.concatenate((self._written, added))[self._dropped :]
            self._added, self._dropped = [], 0
        return self._written.view(np.int64)  # never changed in place: new arrays replace it

    @classmethod
    def from_array(cls, hashes: Iterable[int] | np.ndarray, window: int) -> RecentIds:
        """Rebuild a window from :meth:`to_array`; keeps the newest ``window`` hashes."""
        recent = cls(window)
        array = np.asarray(hashes, dtype=np.int64).view(np.uint64)
        for key in array[-window:] if window else []:
            value = int(key)
            if value not in recent._members:
                recent._order.append(value)
                recent._members.add(value)
                recent._added.append(value)
        return recent
