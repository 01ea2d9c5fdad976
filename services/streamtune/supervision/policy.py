"""When to restart a crashed child, and when to give up: exponential backoff with a crash-loop
limit. Pure (uptimes are passed in), so it is tested without processes.

A crash after a long healthy run is an accident: restart at once (after the initial delay). A
crash soon after starting may be a child that cannot start at all (a port in use, a broken
config): each such crash in a row doubles the delay, and after ``max_quick_crashes`` of them the
supervisor stops retrying, because restarting a child that cannot start only hides the error.
This is the backoff-then-give-up rule of Erlang/OTP supervisors (restart intensity) and of
systemd's ``StartLimitBurst``, in its simplest form.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamtune.errors import StreamtuneError


class CrashLoopError(StreamtuneError):
    """A child crashed too many times in a row soon after starting."""


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervisor restarts one child.

    Parameters
    ----------
    initial_delay_s
        Wait before the first restart after a crash.
    max_delay_s
        Ceiling of the doubling delay: a child killed repeatedly is still back within it
        (plus its own start-up time).
    stable_after_s
        A child that was ready and ran at least this long before crashing was healthy: its
        count of quick crashes starts again. (One that never became ready was not, however long
        it took to fail: on oversubscribed cores a start alone can take that long.)
    max_quick_crashes
        Crashes in a row, each within ``stable_after_s`` of its start, tolerated; one more is a
        crash loop.
    """

    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    stable_after_s: float = 30.0
    max_quick_crashes: int = 5


class RestartTracker:
    """The restart decisions for one child under a :class:`RestartPolicy`.

    >>> tracker = RestartTracker(RestartPolicy(initial_delay_s=1.0, max_delay_s=4.0, max_quick_crashes=3))
    >>> [tracker.crashed(uptime_s=2.0) for _ in range(3)]  # three quick crashes: 1 s, 2 s, 4 s
    [1.0, 2.0, 4.0]
    >>> tracker.crashed(uptime_s=2.0) is None  # a fourth in a row: a crash loop
    True
    >>> RestartTracker(RestartPolicy(initial_delay_s=1.0)).crashed(uptime_s=3600.0)  # after a long run
    1.0
    >>> RestartTracker(RestartPolicy(max_quick_crashes=0)).crashed(uptime_s=3600.0, was_ready=False) is None
    True
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.quick_crashes = 0

    def crashed(self, uptime_s: float, was_ready: bool = True) -> float | None:
        """Record a crash after ``uptime_s`` of running (``was_ready``: it had become ready);
        returns the delay before restarting, or None when the child is crash-looping and must
        not be restarted."""
        if was_ready and uptime_s >= self.policy.stable_after_s:
            self.quick_crashes = 0
            return self.policy.initial_delay_s
        self.quick_crashes += 1
        if self.quick_crashes > self.policy.max_quick_crashes:
            return None
        return min(self.policy.max_delay_s, self.policy.initial_delay_s * 2 ** (self.quick_crashes - 1))
