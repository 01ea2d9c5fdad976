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

import math
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
    """Rows the worker scores per second of work: the rate full-enough batches achieve.

    Small batches (light load, or a queue kept short by shedding) score fewer rows per second
    than large ones; an estimate that followed them down would shed more, keep batches small
    and spiral down to a fraction of the capacity. So the estimate rises quickly towards a
    better observation (``rise``) and falls slowly towards a worse one (``fall``): it tracks
    what the worker can do, and still follows a lasting slowdown within tens of batches.

    >>> rate = ScoringRate(rise=0.5, fall=0.1)
    >>> rate.rows_per_second is None
    True
    >>> rate.record(rows=10, seconds=0.1).record(rows=30, seconds=0.1).rows_per_second  # up quickly
    200.0
    >>> rate.record(rows=10, seconds=0.1).rows_per_second  # down slowly
    190.0
    """

    def __init__(self, rise: float = 0.5, fall: float = 0.05) -> None:
        self._rise = rise
        self._fall = fall
        self.rows_per_second: float | None = None

    def record(self, rows: int, seconds: float) -> ScoringRate:
        """Count one batch of ``rows`` that took ``seconds`` of the worker's time."""
        if rows <= 0 or seconds <= 0:
            return self
        observed = rows / seconds
        if self.rows_per_second is None:
            self.rows_per_second = observed
        else:
            weight = self._rise if observed > self.rows_per_second else self._fall
            self.rows_per_second += weight * (observed - self.rows_per_second)
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
