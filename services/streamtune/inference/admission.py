"""Admission control: shed load at the door instead of queueing it.

A server offered more than it can score either queues without bound (every request then waits
past its client's timeout and goodput falls to nothing — the soak saw 17 successes against
4,441 timeouts) or refuses the excess at once. This module decides at arrival, from the queue in
front of a request and the scoring rate the worker has measured, how long the request would
wait; if that exceeds ``max_queue_s`` (or the request's own deadline) it is refused at once with
503 and a ``Retry-After`` of about the time the queue needs to drain, so the requests admitted
are answered within about ``max_queue_s`` plus their own forward pass. One client may hold at
most ``client_share`` of that queue; beyond it that client gets 429 while others are still
admitted. The idea is the admission control of SEDA (Welsh, Culler and Brewer, 2001, "SEDA: An
Architecture for Well-Conditioned, Scalable Internet Services", SOSP) with the queueing-delay
target of CoDel (Nichols and Jacobson, 2012, "Controlling Queue Delay", ACM Queue), decided on
the predicted rather than the observed delay so the refusal costs the client no wait.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

from streamtune.errors import StreamtuneError


class ShedError(StreamtuneError):
    """A request refused or dropped before scoring; ``status`` is its HTTP answer."""

    status = 503

    def __init__(self, message: str, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.reason = reason  # the label of streamtune_requests_rejected_total
        self.retry_after_s = max(1, math.ceil(retry_after_s))


class OverloadedError(ShedError):
    """The expected wait exceeds the queue budget or the request's deadline (HTTP 503)."""


class ClientShareError(ShedError):
    """This client already holds its share of the queue (HTTP 429)."""

    status = 429


class DeadlinePassedError(ShedError):
    """The request's deadline passed while it waited; it was never scored (HTTP 503)."""


class ClientGoneError(ShedError):
    """The client disconnected before its request was scored (HTTP 499, read by nobody)."""

    status = 499


class ScoringRate:
    """Rows a worker scores per second of its work, over the batches of the last ``window_s``.

    The total rows of recent batches over their total time: every batch counts in proportion
    to its rows, and the estimate follows the machine within ``window_s`` whichever way its
    speed moves. An earlier estimate moved towards each batch's own rate, rising fast and
    falling slowly so that short batches would not talk it down; on shared cores, where a
    worker may have a core to itself for one batch and a tenth of one for the next, it rode on
    the fastest batches: measured in the soak under 2x overload, it stood at 1.5-3.6x the rows
    the workers actually scored, so admitted requests waited 2-3x the queue budget. Under
    overload the queue refills as fast as it drains, so an estimate that errs low costs no
    goodput (the workers stay busy), and one that errs high costs every admitted request.

    >>> rate = ScoringRate(window_s=1.0)
    >>> rate.rows_per_second is None
    True
    >>> rate.record(rows=10, seconds=0.1, now=0.0).record(rows=30, seconds=0.1, now=0.1).rows_per_second
    200.0
    >>> rate.record(rows=10, seconds=0.4, now=2.0).rows_per_second  # the older batches left the window
    25.0
    """

    def __init__(self, window_s: float = 2.0) -> None:
        self._window_s = window_s
        self._batches: collections.deque[tuple[float, int, float]] = collections.deque()
        self._rows = 0
        self._seconds = 0.0

    @property
    def rows_per_second(self) -> float | None:
        """The estimate; None until a batch has been scored."""
        return self._rows / self._seconds if self._seconds > 0 else None

    def record(self, rows: int, seconds: float, now: float | None = None) -> ScoringRate:
        """Count one batch of ``rows`` that took ``seconds`` of the worker's time, ending ``now``
        (monotonic seconds). The latest batch always counts, however long ago it was."""
        if rows <= 0 or seconds <= 0:
            return self
        now = time.monotonic() if now is None else now
        self._batches.append((now, rows, seconds))
        while len(self._batches) > 1 and self._batches[0][0] < now - self._window_s:
            self._batches.popleft()
        # Summed afresh (a few dozen batches): running sums would drift with rounding.
        self._rows = sum(batch[1] for batch in self._batches)
        self._seconds = sum(batch[2] for batch in self._batches)
        return self


@dataclass(frozen=True)
class Admission:
    """The admission rule (pure: the queue's state is passed in).

    Parameters
    ----------
    max_queue_s
        Longest expected wait a request is admitted with.
    client_share
        Share of the queue budget (rows) one client may hold.

    >>> rule = Admission(max_queue_s=0.2, client_share=0.5)
    >>> rule.check(rows=4, ahead=30, client_rows=0, rows_per_second=200.0, deadline_s=5.0)  # 0.15 s: admitted
    >>> rule.check(rows=4, ahead=50, client_rows=0, rows_per_second=200.0, deadline_s=5.0)
    Traceback (most recent call last):
    ...
    streamtune.inference.admission.OverloadedError: expected wait 0.250 s exceeds the queue budget of 0.200 s
    >>> rule.check(rows=4, ahead=30, client_rows=18, rows_per_second=200.0, deadline_s=5.0)
    Traceback (most recent call last):
    ...
    streamtune.inference.admission.ClientShareError: this client has 18 instances queued, its share is 20
    """

    max_queue_s: float
    client_share: float = 1.0

    def check(
        self, rows: int, ahead: float, client_rows: int, rows_per_second: float | None, deadline_s: float
    ) -> None:
        """Raise the :class:`ShedError` refusing a request of ``rows`` with ``ahead`` rows
        queued or being scored in front of it (``client_rows`` of them its client's), or return
        when it is admitted. Without a measured rate (nothing scored yet) every request is
        admitted: the first batches measure it."""
        if rows_per_second is None or rows_per_second <= 0:
            return
        wait = ahead / rows_per_second
        budget_rows = self.max_queue_s * rows_per_second
        share = max(rows, math.floor(self.client_share * budget_rows))
        if ahead > 0 and client_rows + rows > share:
            raise ClientShareError(
                f"this client has {client_rows} instances queued, its share is {share}",
                "client_share",
                retry_after_s=client_rows / rows_per_second,
            )
        if wait > min(self.max_queue_s, deadline_s):
            budget = "the queue budget" if self.max_queue_s <= deadline_s else "the request's deadline"
            limit = min(self.max_queue_s, deadline_s)
            raise OverloadedError(
                f"expected wait {wait:.3f} s exceeds {budget} of {limit:.3f} s",
                "overloaded",
                retry_after_s=wait,
            )
