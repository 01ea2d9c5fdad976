"""streamtune's own services (`streamtune train`, `streamtune serve`) as child processes.

An evaluation runs the same commands a deployment runs; each child gets its configuration only
through ``STREAMTUNE_*`` environment variables built from a :class:`Settings` object, runs in
the evaluation's work directory (so no stray ``streamtune.env`` is picked up) and writes its log
to a file there.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from streamtune.config import Settings
from streamtune.evaluation.errors import EvaluationError

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 60.0  # a full fine-tuning trainer publishes ~90 MB on SIGTERM
_LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment_for(settings: Settings, threads: int) -> dict[str, str]:
    """This process's environment with ``settings`` as ``STREAMTUNE_*`` variables.

    ``threads`` caps the child's intra-op threads: several children share the cores, and a
    fixed count also fixes the order of floating-point reductions (same numbers every run).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMTUNE_")}
    env.update(settings.as_environment())
    env.update(
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    return env


class ChildService:
    """One ``streamtune <command>`` child process with its output in ``log_path``."""

    def __init__(self, name: str, command: str, settings: Settings, work_dir: Path, threads: int) -> None:
        self.name = name
        self.log_path = work_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamtune.cli", command],
            env=environment_for(settings, threads),
            cwd=work_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the evaluation reaches children via stop()
        )
        logger.info("started %s (pid %d), log %s", name, self.process.pid, self.log_path)

    def check_alive(self) -> None:
        """Raise :class:`EvaluationError` with the end of the child's log if it has exited."""
        code = self.process.poll()
        if code is not None:
            raise EvaluationError(f"{self.name} exited with status {code}; end of {self.log_path}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]

    def stop(self) -> int | None:
        """SIGTERM (the trainer publishes what it trained), then SIGKILL after a grace period."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s; killing it", self.name, _STOP_GRACE_S)
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
