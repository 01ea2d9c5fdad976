"""What the trainer does with each step's result, in the order the steps were taken.

A step's result (its scores before learning, its loss) feeds the prequential monitor, the
version's ledger and the metrics. With the family in a model process the result comes while
the trainer already routes the next batch (:mod:`streamtune.modeling.model_process`): its
recording waits here, in order, and is done as soon as it arrives, or when more than ``lag``
wait. :meth:`StepRecords.settle` records everything; the trainer calls it before anything
reads what the records feed (a version's figures and ledger, a restore, a forget, a reload).
A result that is there at once (an in-process family) is recorded at once.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from streamtune.modeling.deferred import Deferred

# Two batches' steps (scoring held-out rows, training): the trainer prepares the next batch
# while the model learns the last, and runs no further ahead.
DEFAULT_LAG = 4


class StepRecords:
    """Results to record, oldest first."""

    def __init__(self, lag: int = DEFAULT_LAG) -> None:
        self._lag = lag
        self._waiting: collections.deque[tuple[Deferred[Any], Callable[[Any], None], bool]] = collections.deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, result: Deferred[Any], record: Callable[[Any], None], *, training: bool = False) -> None:
        """Record ``result`` with ``record`` once it is there (and every earlier one before it);
        ``training``: the result is a training step's."""
        self._waiting.append((result, record, training))
        while self._waiting and len(self._waiting) > self._lag:
            self._record_oldest()
        self._record_arrived()

    def steps_behind(self) -> int:
        """Training steps sent but not yet done, beyond the newest: while the model keeps up
        with the stream, the step just sent is done within milliseconds and none is behind."""
        self._record_arrived()
        return max(0, sum(training for _, _, training in self._waiting) - 1)

    def settle(self) -> None:
        """Wait for every result and record it."""
        while self._waiting:
            self._record_oldest()

    def _record_arrived(self) -> None:
        while self._waiting and self._waiting[0][0].ready:
            self._record_oldest()

    def _record_oldest(self) -> None:
        result, record, _ = self._waiting.popleft()
        record(result.result())
