"""When the training loop should try to publish a version. Pure timing, no I/O.

A version follows every ``every_batches`` trained batches. While the stream flows it holds a
whole number of such groups, so a version held for a backlog ends on the stream's cadence and
never leaves a last group short of a version's worth (a reader waiting for the version at a
group's end would wait for ever). While more batches already wait, the loop keeps training
into the same version for up to ``max_delay_ms`` after its previous attempt,
and until publishing has taken at most ``max_share`` of the time since that attempt began: the
gate and the write are then paid once for several batches, so a trainer behind its stream spends
its time learning. With nothing waiting a version follows every batch, so freshness at a
sustainable rate is untouched. An attempt's cost rises at once to the newest attempt's when that
was dearer (so publishing never takes more than its share for long) and falls back by a quarter
of the gap per cheaper attempt (so one slow attempt, a snapshot, does not hold every later
version as long).

A failed publish is retried after the next batch, or after ``retry_s`` when the loop is idle. A
candidate the gate refused is given up when the loop is idle ``quiet_s`` after the refusal: no
event will come to redeem it, and the version that records its events as discarded should not
wait for the stream to resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# An idle trainer retries a failed publish this often (a busy one retries after every batch).
RETRY_S = 5.0
# Weight of a cheaper newest attempt in what an attempt is expected to cost.
COST_WEIGHT = 0.25
# An idle trainer gives up a refused candidate after this long (a busy one waits for the gate's
# patience): long enough that a pause between two batches of a live stream does not count.
QUIET_S = 1.0


class PublishSchedule:
    """Remembers the last attempt and the last failure; answers "publish now?".

    >>> clock = iter([0.0, 1.0, 2.5, 9.0, 10.0, 14.0]).__next__
    >>> schedule = PublishSchedule(every_batches=1, max_delay_ms=2000, clock=clock)  # starts at 0
    >>> schedule.due(batches=0, waiting=0), schedule.due(batches=1, waiting=0)
    (False, True)
    >>> schedule.due(batches=1, waiting=2), schedule.due(batches=1, waiting=2)  # at 1, at 2.5
    (False, True)
    >>> schedule.failed()  # at 9
    >>> schedule.retry_due(waiting=1), schedule.retry_due(waiting=1)  # at 10, at 14
    (False, True)
    >>> clock = iter([0.0, 1.0, 1.5, 2.0, 5.9, 6.0]).__next__
    >>> schedule = PublishSchedule(every_batches=1, max_delay_ms=0, max_share=0.1, clock=clock)
    >>> schedule.attempted(); schedule.finished()  # a publish from 1 to 1.5 s
    >>> schedule.due(batches=1, waiting=1), schedule.due(batches=1, waiting=1)  # at 2, at 5.9
    (False, False)
    >>> schedule.due(batches=1, waiting=1)  # at 6: 0.5 s of publishing in 5 s
    True
    >>> schedule = PublishSchedule(every_batches=1, max_delay_ms=0, clock=iter([0.0, 1.0, 1.5, 2.5]).__next__)
    >>> schedule.attempted(); schedule.rejected()  # at 1
    >>> schedule.give_up_due(batches=1), schedule.give_up_due(batches=1)  # at 1.5, at 2.5
    (False, True)
    >>> PublishSchedule(every_batches=1, max_delay_ms=0).idle_due(waiting=3, only_discarded=True)
    True
    """

    def __init__(
        self,
        every_batches: int,
        max_delay_ms: int,
        max_share: float = 0.0,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_batches = every_batches
        self.max_delay_ms = max_delay_ms
        self.max_share = max_share
        self.retry_s = retry_s
        self.quiet_s = QUIET_S
        self._clock = clock
        self._last_attempt = clock()
        # Seconds an attempt (gate, write, announcement) takes: up at once, down by 1/4 a time.
        self._attempt_cost: float | None = None
        self._failed_at: float | None = None
        self._refused = False  # the gate refused the latest candidate

    def due(self, batches: int, waiting: int) -> bool:
        """A whole number of ``every_batches`` groups, and either nothing else waits or the hold
        is spent."""
        if not batches or batches % self.every_batches:
            return False
        if not waiting:
            return True
        hold_s = self.max_delay_ms / 1000
        if self.max_share and self._attempt_cost is not None:
            hold_s = max(hold_s, self._attempt_cost / self.max_share)
        return not hold_s or self._clock() - self._last_attempt >= hold_s

    def retry_due(self, waiting: int) -> bool:
        """A publish failed, batches (or discarded events) still wait to be published, and the
        retry delay is spent."""
        failed_at = self._failed_at
        return bool(waiting) and failed_at is not None and self._clock() - failed_at >= self.retry_s

    def idle_due(self, waiting: int, only_discarded: bool, held_batches: int = 0) -> bool:
        """Publish from an idle loop: a failed publish once its retry delay is spent; else at once
        when enough trained batches were held back for a backlog that has drained since (and the
        gate has not refused them), or when all that waits is discarded events (a version with
        the published weights records them and moves the offsets past them)."""
        if self._failed_at is not None:
            return self.retry_due(waiting)
        if held_batches >= self.every_batches and not self._refused:
            return True
        return only_discarded

    def give_up_due(self, batches: int) -> bool:
        """The gate refused the candidate still trained into the model ``quiet_s`` or more ago
        (asked when the loop is idle)."""
        return bool(batches) and self._refused and self._clock() - self._last_attempt >= self.quiet_s

    def rejected(self) -> None:
        self._refused = True

    def attempted(self) -> None:
        self._last_attempt = self._clock()

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """An attempt to publish, from :meth:`attempted` to :meth:`finished` whatever its outcome."""
        self.attempted()
        try:
            yield
        finally:
            self.finished()

    def finished(self) -> None:
        """The attempt begun at :meth:`attempted` is over, whatever its outcome."""
        cost = self._clock() - self._last_attempt
        previous = self._attempt_cost
        if previous is None or cost >= previous:
            self._attempt_cost = cost
        else:
            self._attempt_cost = previous + COST_WEIGHT * (cost - previous)

    def failed(self) -> None:
        self._failed_at = self._clock()

    def succeeded(self) -> None:
        self._failed_at = None
        self._refused = False

    def gave_up(self) -> None:
        self._refused = False
