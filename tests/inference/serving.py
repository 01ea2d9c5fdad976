"""Run the real inference app under uvicorn in a thread of the test process, on a free port."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.inference.server import build_app
from streamtune.metrics import ServingMetrics
from streamtune.testing.network import free_port, wait_for


@dataclass
class RunningServer:
    app: FastAPI
    url: str
    metrics: ServingMetrics

    @property
    def follower(self):  # the app's VersionFollower
        return self.app.state.follower

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@contextlib.contextmanager
def running(app: FastAPI, metrics: ServingMetrics, ready: bool = True) -> Iterator[RunningServer]:
    """Serve ``app`` on loopback until the block ends; wait for /readyz unless ``ready`` is False."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, 30, what="uvicorn start")
        if ready:
            wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 60, what="a loaded model")
        yield RunningServer(app, url, metrics)
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def serving(settings: Settings, **overrides: object) -> Iterator[RunningServer]:
    """The app exactly as `streamtune serve` builds it from ``settings`` (with ``overrides``)."""
    settings = Settings.model_validate(settings.model_dump() | overrides)  # validated, unlike model_copy
    metrics = ServingMetrics()
    with running(build_app(settings, metrics), metrics) as server:
        yield server


def store_of(settings: Settings) -> CheckpointStore:
    return CheckpointStore(settings.checkpoint_dir, settings.keep_versions)
