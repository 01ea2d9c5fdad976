"""Micro-batches drawn fairly from every partition: one bounded queue per partition, batches
assembled round-robin, and a partition's consumption paused only when its own queue is full.

Why: a Kafka consumer that pauses all its partitions whenever the training step falls behind
loses the records it had prefetched (a pause discards them; a resume fetches again), and the
first partition to answer after each resume refills the whole hand-off. Which partition that is
depends on fetch order, not on backlog: in a soak partition 0 won every time for 20 minutes
while partitions 1 and 2 never advanced. Here each partition's records wait in their own queue,
every batch takes from all non-empty queues in turn (max-min fair: backlogged partitions advance
at the same rate), and only a partition whose queue is full is paused, so the others' prefetched
records keep flowing.

A batch closes when ``max_size`` items wait in all queues together, or ``max_latency`` after the
oldest waiting item arrived. While the trainer has work in hand (``busy``), a full batch also
waits, up to that latency bound, until every partition has items queued: otherwise right after
a resume the partition whose records arrive first would fill the batch alone. Waiting then costs
no throughput (the trainer is busy) and at most ``max_latency`` of freshness. That wait is a
timing rule, so it can be turned off (``fair_wait=False``) where batches must close by size and
latency alone. Pure (the clock is injected): tested without Kafka.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class FairBatcher(Generic[K, T]):
    """Per-partition queues of items, cut into batches round-robin.

    Parameters
    ----------
    max_size
        Items per batch; a batch is due as soon as this many wait.
    max_latency_s
        A batch is due this long after its oldest item arrived, however few wait.
    capacity
        Items one partition may hold; at this :meth:`full` names it (pause it), and at half of
        it or less :meth:`resumable` does (hysteresis: a partition is not paused and resumed on
        every batch).
    clock
        Monotonic time source in seconds.
    fair_wait
        Whether a busy trainer's full batch (and the first batch after an assignment) waits for
        every partition to have items; see the module doc.

    Examples
    --------
    >>> now = [0.0]
    >>> batcher = FairBatcher(max_size=4, max_latency_s=1.0, capacity=4, clock=lambda: now[0])
    >>> batcher.track(["a", "b"])
    >>> now[0] = 1.0  # past the first batch's wait for every partition (see track)
    >>> for item in ["a1", "a2", "a3", "a4", "b1", "b2"]:
    ...     batcher.add(item[0], item)
    >>> batcher.full()  # partition "a" has a queue's worth: pause it
    ['a']
    >>> batcher.take()  # a batch takes from both partitions in turn
    ['a1', 'b1', 'a2', 'b2']
    >>> batcher.resumable(["a"])  # "a" holds 2 of 4: resume it
    ['a']
    >>> batcher.due()  # two items wait, and their latency budget is not spent
    False
    >>> for item in ["a5", "a6"]:
    ...     batcher.add("a", item)
    >>> batcher.due(), batcher.due(busy=True)  # a full batch, but only "a" has items
    (True, False)
    >>> now[0] = 2.5
    >>> batcher.due(busy=True), batcher.take()
    (True, ['a3', 'a4', 'a5', 'a6'])
    """

    def __init__(
        self,
        max_size: int,
        max_latency_s: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        fair_wait: bool = True,
    ) -> None:
        if max_size < 1 or max_latency_s <= 0 or capacity < 1:
            raise ValueError("max_size and capacity must be >= 1 and max_latency_s > 0")
        self.max_size = max_size
        self.max_latency_s = max_latency_s
        self.capacity = capacity
        self._clock = clock
        self.fair_wait = fair_wait
        self._queues: dict[K, collections.deque[tuple[float, T]]] = {}
        self._size = 0
        self._next_first = 0  # rotates which partition a batch starts with
        self._settling_until = 0.0  # see track()

    def __len__(self) -> int:
        return self._size

    def track(self, partitions: Iterable[K]) -> None:
        """Expect items from ``partitions`` (the consumer's assignment): until each has items
        queued, a busy trainer's full batch waits for them — and so does the first batch after
        the assignment (for at most ``max_latency``), since the first partition to deliver
        would otherwise fill it alone."""
        for partition in partitions:
            self._queues.setdefault(partition, collections.deque())
        self._settling_until = self._clock() + self.max_latency_s

    def add(self, partition: K, item: T) -> None:
        """Queue ``item`` of ``partition`` (in its partition's order)."""
        self._queues.setdefault(partition, collections.deque()).append((self._clock(), item))
        self._size += 1

    def seconds_until_due(self, busy: bool = False) -> float | None:
        """Time left before a batch must be cut; 0 when one is due, None when nothing waits.
        ``busy``: the trainer has batches in hand (see the module doc)."""
        if not self._size:
            return None
        busy = self.fair_wait and (busy or self._clock() < self._settling_until)
        if self._size >= self.max_size and (not busy or all(self._queues.values())):
            return 0.0
        oldest = min(queue[0][0] for queue in self._queues.values() if queue)
        return max(0.0, oldest + self.max_latency_s - self._clock())

    def due(self, busy: bool = False) -> bool:
        remaining = self.seconds_until_due(busy)
        return remaining is not None and remaining <= 0

    def take(self) -> list[T]:
        """Up to ``max_size`` items, one from each non-empty partition in turn."""
        keys = [key for key, queue in self._queues.items() if queue]
        if keys:
            start = self._next_first % len(keys)
            keys = keys[start:] + keys[:start]
            self._next_first += 1
        batch: list[T] = []
        while keys and len(batch) < self.max_size:
            for key in list(keys):
                if len(batch) == self.max_size:
                    break
                batch.append(self._queues[key].popleft()[1])
                if not self._queues[key]:
                    keys.remove(key)
        self._size -= len(batch)
        return batch

    def oldest(self, partition: K) -> T | None:
        """The oldest item of ``partition`` not taken yet, if any."""
        queue = self._queues.get(partition)
        return queue[0][1] if queue else None

    def full(self) -> list[K]:
        """Partitions holding ``capacity`` items or more: stop reading them."""
        return [key for key, queue in self._queues.items() if len(queue) >= self.capacity]

    def resumable(self, paused: Iterable[K]) -> list[K]:
        """Those of the ``paused`` partitions down to half their capacity: read them again."""
        return [key for key in paused if len(self._queues.get(key, ())) <= self.capacity // 2]

    def clear(self) -> int:
        """Drop every waiting item (a rebalance or rewind); returns how many."""
        dropped, self._queues, self._size = self._size, {}, 0
        return dropped
