"""How fast requests arrive, to decide whether holding a batch open is worth it.

Waiting ``max_wait`` for company only pays when another request is likely to come within it;
a lone client (or a quiet period) would pay the wait on every request for nothing. The rate is
an exponentially decaying count of arrivals (each arrival adds ``1/τ``, the total decays with
time constant ``τ``), which needs no window of timestamps and follows a change of load within
about ``τ``.
"""

from __future__ import annotations

import math


class ArrivalRate:
    """Exponentially weighted arrival rate, in arrivals per second.

    Parameters
    ----------
    time_constant_s
        How quickly old arrivals stop counting (τ).

    >>> rate = ArrivalRate(time_constant_s=1.0)
    >>> for step in range(2000):  # 1000 arrivals a second for 2 s
    ...     _ = rate.update(now=step / 1000)
    >>> round(rate.per_second(now=2.0))
    864
    >>> round(rate.expected_within(0.005, now=2.0), 1)  # in the next 5 ms
    4.3
    >>> round(rate.expected_within(0.005, now=7.0), 2)  # after five quiet seconds
    0.03
    """

    def __init__(self, time_constant_s: float = 1.0) -> None:
        self._tau = time_constant_s
        self._rate = 0.0
        self._at = 0.0

    def update(self, now: float) -> ArrivalRate:
        """Count one arrival at time ``now`` (seconds, monotonic)."""
        self._rate = self.per_second(now) + 1.0 / self._tau
        self._at = now
        return self

    def per_second(self, now: float) -> float:
        return self._rate * math.exp(-max(0.0, now - self._at) / self._tau)

    def expected_within(self, seconds: float, now: float) -> float:
        """Arrivals to expect in the next ``seconds`` at the current rate."""
        return self.per_second(now) * seconds
