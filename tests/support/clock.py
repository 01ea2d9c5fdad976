"""A clock the test moves by hand, for the pure timing rules (batcher, publish schedule)."""

from __future__ import annotations


class ManualClock:
    """Callable like ``time.monotonic``; returns ``now``, which the test sets or advances."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
