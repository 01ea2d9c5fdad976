"""docker/healthcheck.py: the images' health check probes the right endpoint of each process."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from streamtune.testing.network import free_port
from tests.deploy.tools import REPO

SCRIPT = REPO / "docker" / "healthcheck.py"


class _Handler(BaseHTTPRequestHandler):
    statuses: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        self.send_response(self.statuses.get(self.path, 404))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, int]]]:
    statuses: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"statuses": statuses})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], statuses
    httpd.shutdown()
    httpd.server_close()


def check(role: str, port: int) -> int:
    env = {"STREAMTUNE_HTTP_PORT": str(port), "STREAMTUNE_TRAINER_METRICS_PORT": str(port)}
    result = subprocess.run([sys.executable, str(SCRIPT), role], env=env, capture_output=True, timeout=30, check=False)
    return result.returncode


def test_serve_probes_healthz(server: tuple[int, dict[str, int]]) -> None:
    port, statuses = server
    assert check("serve", port) == 1
    statuses["/healthz"] = 200
    assert check("serve", port) == 0
    statuses["/healthz"] = 503
    assert check("serve", port) == 1


def test_train_probes_metrics(server: tuple[int, dict[str, int]]) -> None:
    port, statuses = server
    statuses["/healthz"] = 200
    assert check("train", port) == 1
    statuses["/metrics"] = 200
    assert check("train", port) == 0


def test_nothing_listening_is_unhealthy() -> None:
    assert check("serve", free_port()) == 1
