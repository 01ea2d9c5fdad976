"""A warm spare: a child process started ahead of need that has done its slow start-up (imports,
the base model) and waits on its standard input for the word to go on.

A server's start is mostly fixed cost: importing torch and transformers and building the base
model took ~4 s of CPU on a quiet core and 25–50 s on the soak's oversubscribed cores, against
well under a second to load the newest version and listen. With a spare kept warm, replacing a
crashed server costs only that last part. The spare is the same command with ``--standby``; it
gets ``go`` when it is needed, and exits when its standard input closes (the supervisor went).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO

logger = logging.getLogger(__name__)

STANDBY_FLAG = "--standby"
_GO = b"go\n"
# A spare that died is started again at most this often (one that cannot start costs no more).
_RELAUNCH_INTERVAL_S = 30.0


def wait_for_go(stream: IO[bytes] | None = None) -> bool:
    """Block until the supervisor says go (True) or goes away (False: end of input)."""
    stream = stream if stream is not None else sys.stdin.buffer
    while line := stream.readline():
        if line == _GO:
            return True
    return False


class Spare:
    """One warm spare of a child, started with ``command`` plus :data:`STANDBY_FLAG`."""

    def __init__(self, name: str, command: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self._command = [*command, STANDBY_FLAG]
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._launched_at = -_RELAUNCH_INTERVAL_S

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start a spare unless one is alive (or one died less than half a minute ago)."""
        now = time.monotonic()
        if self.alive or (self.process is not None and now - self._launched_at < _RELAUNCH_INTERVAL_S):
            return
        self._launched_at = now
        self.process = subprocess.Popen(self._command, env=self._env, stdin=subprocess.PIPE)
        logger.info("started a warm spare %s (pid %d)", self.name, self.process.pid)

    def take(self) -> subprocess.Popen[bytes] | None:
        """The spare, told to go on; None when there is no live spare to take."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None
        try:
            assert process.stdin is not None
            process.stdin.write(_GO)
            process.stdin.flush()
        except OSError:  # it died just now
            return None
        return process

    def stop(self, grace_s: float) -> None:
        """End the spare: close its input (it exits by itself), then kill it after ``grace_s``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=grace_s)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
