"""Micro-batching policy: a batch closes at ``max_size`` items or ``max_latency`` after its first
item, whichever comes first. Pure (the clock is injected), so it is tested without Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """Accumulates items and says when the open batch must close.

    Parameters
    ----------
    max_size
        Items after which a batch closes at once.
    max_latency_s
        Seconds after the batch's first item at which it closes even if not full: this bounds
        how long an event waits before it can be trained on.
    clock
        Monotonic time source in seconds.

    Examples
    --------
    >>> now = [0.0]
    >>> batcher = MicroBatcher(max_size=2, max_latency_s=1.0, clock=lambda: now[0])
    >>> batcher.add("a") is None
    True
    >>> batcher.add("b")
    ['a', 'b']
    >>> batcher.add("c") is None
    True
    >>> now[0] = 1.5
    >>> batcher.take_if_due()
    ['c']
    """

    def __init__(self, max_size: int, max_latency_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1 or max_latency_s <= 0:
            raise ValueError("max_size must be >= 1 and max_latency_s > 0")
        self.max_size = max_size
        self.max_latency_s = max_latency_s
        self._clock = clock
        self._items: list[T] = []
        self._opened_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> list[T] | None:
        """Add one item; returns the closed batch when this item filled it."""
        if not self._items:
            self._opened_at = self._clock()
        self._items.append(item)
        if len(self._items) >= self.max_size:
            return self.take()
        return None

    def seconds_until_due(self) -> float | None:
        """Time left before the open batch must close; None when nothing is open."""
        if self._opened_at is None:
            return None
        return max(0.0, self._opened_at + self.max_latency_s - self._clock())

    def take_if_due(self) -> list[T] | None:
        """The open batch if its latency budget is spent, else None."""
        remaining = self.seconds_until_due()
        if remaining is None or remaining > 0:
            return None
        return self.take()

    def take(self) -> list[T]:
        """Close and return the open batch (possibly empty)."""
        batch, self._items, self._opened_at = self._items, [], None
        return batch

    def discard(self, predicate: Callable[[T], bool]) -> int:
        """Drop the open items matching ``predicate`` (e.g. from a revoked partition)."""
        kept = [item for item in self._items if not predicate(item)]
        dropped = len(self._items) - len(kept)
        self._items = kept
        if not kept:
            self._opened_at = None
        return dropped
