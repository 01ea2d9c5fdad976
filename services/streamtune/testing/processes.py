"""Run streamtune services as real child processes, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from streamtune.config import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process see ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMTUNE_")}
    env.update(settings.as_environment())
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    # Two services and the test share two cores: keep torch from oversubscribing them.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class ServiceProcess:
    """`streamtune <command>` in a child process with its output in a log file."""

    def __init__(
        self,
        command: str,
        settings: Settings,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ):
        self.log_path = log_path
        env = settings_env(settings) | (extra_env or {})
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamtune.cli", command],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to clean up."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._log.close()

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
