"""One supervised child process: start it, notice that it is ready or has died, restart it on
the :class:`RestartPolicy`'s schedule, stop it.

Driven by the supervisor's loop (:meth:`SupervisedChild.check`), so one thread watches every
child and no state is shared between threads.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from streamtune.supervision.policy import CrashLoopError, RestartPolicy, RestartTracker
from streamtune.supervision.standby import Spare

logger = logging.getLogger(__name__)

# Readiness is probed at most this often while a child starts (each probe is an HTTP request).
_PROBE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ChildLaunch:
    """How to start a child and tell that it serves.

    ``ready`` probes whether the running child serves (e.g. its ``/readyz`` answers 200); it is
    called from the supervisor's loop and must return quickly. With ``standby`` a warm spare
    (:mod:`streamtune.supervision.standby`) is kept once the child is ready, and replaces it
    when it dies.
    """

    command: Sequence[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    standby: bool = False


class SupervisedChild:
    """A child process kept running: restarted with backoff whenever it exits.

    ``launch`` says how to start it and probe its readiness. ``restarts`` and ``up`` are this
    child's series of the supervisor's metrics.
    """

    def __init__(self, name: str, launch: ChildLaunch, policy: RestartPolicy, restarts: Counter, up: Gauge) -> None:
        self.name = name
        self._command = list(launch.command)
        self._env = launch.env
        self._ready_probe = launch.ready
        self._tracker = RestartTracker(policy)
        self._restarts = restarts
        self._up = up
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False
        self.restarts = 0
        self._started_at = 0.0
        self._next_probe = 0.0
        self._restart_at: float | None = None
        self._spare = Spare(name, self._command, self._env) if launch.standby else None
        # Set by the supervisor: a spare starts only while no other child is starting, so its
        # imports never slow another child's restart.
        self.spare_may_start = True

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the child: the warm spare if one is up, else a new process."""
        spare = self._spare.take() if self._spare is not None else None
        self.process = spare or subprocess.Popen(self._command, env=self._env)
        self._started_at = time.monotonic()
        self._next_probe = 0.0
        self._restart_at = None
        self.ready = False
        logger.info("started %s (pid %d)%s", self.name, self.process.pid, ": its warm spare took over" if spare else "")

    def check(self, now: float) -> None:
        """Follow the child one step: probe readiness, notice an exit, restart when due.

        Raises :class:`CrashLoopError` when the child keeps dying soon after starting.
        """
        if self._restart_at is not None:
            if now >= self._restart_at:
                self._restarts.inc()
                self.restarts += 1
                self.start()
            return
        assert self.process is not None, f"{self.name} was never started"
        status = self.process.poll()
        if status is None:
            self._probe(now)
            if self.ready and self.spare_may_start and self._spare is not None:
                self._spare.launch()  # only once the child is ready: it does not slow that start
            return
        self._on_exit(status, now)

    def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; no restart follows."""
        self._restart_at = None
        if self._spare is not None:
            self._spare.stop(grace_s)
        process = self.process
        self._up.set(0)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s; killing it", self.name, grace_s)
            process.kill()
            process.wait()

    def _probe(self, now: float) -> None:
        if self.ready or now < self._next_probe:
            return
        self._next_probe = now + _PROBE_INTERVAL_S
        if self._ready_probe():
            self.ready = True
            self._up.set(1)
            logger.info("%s is ready (pid %d, %.1f s after its start)", self.name, self.pid, now - self._started_at)

    def _on_exit(self, status: int, now: float) -> None:
        uptime = now - self._started_at
        delay = self._tracker.crashed(uptime, was_ready=self.ready)
        self.ready = False
        self._up.set(0)
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        if delay is None:
            raise CrashLoopError(
                f"{self.name} {how} {self._tracker.quick_crashes} times in a row, each before it was ready or "
                f"within {self._tracker.policy.stable_after_s:.0f} s of starting: giving up (see its output above)"
            )
        logger.error("%s (pid %d) %s after %.1f s; restarting it in %.1f s", self.name, self.pid, how, uptime, delay)
        self._restart_at = now + delay
