"""When to try a request again: a bounded number of attempts, exponential backoff with jitter,
and the server's ``Retry-After`` honoured when it sends one (RFC 9110, section 10.2.3)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from streamtune.client.errors import ServerUnreachableError

# 429: queue full, 503: no model yet or shedding load. Both promise that a retry can succeed.
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry 429/503 answers and failed connections.

    Parameters
    ----------
    attempts
        Tries in all, the first included (1: never retry).
    backoff_s
        Pause before the first retry without a ``Retry-After``; doubled for each further one.
    max_delay_s
        No single pause is longer; a ``Retry-After`` beyond it ends the retries instead.

    >>> policy = RetryPolicy(attempts=3, backoff_s=0.1, jitter=0)
    >>> [policy.delay(n, None) for n in (1, 2)], policy.delay(1, "2"), policy.delay(1, "600")
    ([0.1, 0.2], 2.0, None)
    >>> policy.delay(3, None) is None  # attempts used up
    True
    """

    attempts: int = 4
    backoff_s: float = 0.25
    max_delay_s: float = 30.0
    jitter: float = 0.1
    statuses: frozenset[int] = field(default=RETRY_STATUSES)

    def delay(self, attempt: int, retry_after: str | None) -> float | None:
        """Seconds to wait before try ``attempt + 1`` after try ``attempt`` failed; None: give up."""
        if attempt >= self.attempts:
            return None
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return asked if asked <= self.max_delay_s else None
        pause = min(self.backoff_s * 2 ** (attempt - 1), self.max_delay_s)
        return pause * (1 + random.uniform(-self.jitter, self.jitter)) if self.jitter else pause


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP-date; None if absent or malformed.

    >>> parse_retry_after("3"), parse_retry_after(None), parse_retry_after("soon")
    (3.0, None, None)
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class Attempts:
    """The retry bookkeeping of one call, free of I/O so both clients share it: after each try,
    :meth:`after_answer` or :meth:`after_failure` says how long to wait, or that it is over."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.made = 0

    def start(self) -> None:
        self.made += 1

    def after_answer(self, status: int, retry_after: str | None) -> float | None:
        """Seconds to wait before retrying this answer; None: the answer is final."""
        if status not in self.policy.statuses:
            return None
        return self.policy.delay(self.made, retry_after)

    def after_failure(self, error: httpx.TransportError, what: str) -> float:
        """Seconds to wait before retrying; raises :class:`ServerUnreachableError` when over.
        Only a refused connection is surely unprocessed: a timed-out request may have been scored."""
        delay = self.policy.delay(self.made, None) if isinstance(error, httpx.ConnectError) else None
        if delay is None:
            raise ServerUnreachableError(f"{what}: {type(error).__name__}: {error}") from error
        return delay
