"""`streamtune up` heals itself: real processes, real SIGKILLs.

The whole stack runs as a user runs it (embedded broker, trainer, server as child processes of
`streamtune up`). A SIGKILLed trainer comes back while predict keeps answering and no event is
lost (the broker was never stopped); a SIGKILLed server comes back; the restarts are counted;
SIGTERM stops everything. A child that cannot start stops the stack instead of looping forever.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.testing.crash_harness import produce_records, published_records
from streamtune.testing.network import free_port, wait_for
from streamtune.testing.processes import ServiceProcess

pytestmark = pytest.mark.slow


def _stack_settings(settings):
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": None,  # `up` starts its own embedded broker
            "broker_port": free_port(),
            "supervisor_metrics_port": free_port(),
            "events_topic_partitions": 1,
            "restart_initial_delay_ms": 200.0,
        }
    )


def _pid(log: str, child: str, after: int = 0) -> int | None:
    """The newest pid the supervisor reported for ``child``, if it differs from ``after``."""
    pids = [int(pid) for pid in re.findall(rf"started {child} \(pid (\d+)\)", log)]
    return pids[-1] if pids and pids[-1] != after else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PredictProbe(threading.Thread):
    """Calls /v1/predict every 50 ms and records when it failed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.failures: list[float] = []
        self.successes = 0
        self.halt = threading.Event()

    def run(self) -> None:
        body = json.dumps({"instances": [{"text": "a film"}]}).encode()
        while not self.halt.wait(0.05):
            request = urllib.request.Request(self.url, body, {"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 200
                    self.successes += 1
            except (OSError, urllib.error.HTTPError):
                self.failures.append(time.monotonic())


def _events(start: int, count: int) -> list[tuple[bytes, bytes]]:
    return [
        (f"s-{i}".encode(), json.dumps({"event_id": f"s-{i}", "text": f"film {i}", "label": i % 2}).encode())
        for i in range(start, start + count)
    ]


def _restarts(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'streamtune_child_restarts_total\{child="(\w+)"\} ([\d.]+)', text)
    return {child: float(value) for child, value in found}


def test_killed_children_come_back_and_the_broker_keeps_every_event(settings, tmp_path):
    settings = _stack_settings(settings)
    stack = ServiceProcess("up", settings, tmp_path / "up.log")
    store = CheckpointStore(settings.checkpoint_dir)
    probe = PredictProbe(f"http://127.0.0.1:{settings.http_port}/v1/predict")
    try:
        wait_for(lambda: "streamtune is up" in stack.log(), 120, what="the stack to be up")
        assert "keeps events in memory only" in stack.log()
        probe.start()
        produce_records(settings.bootstrap_servers, settings.events_topic, _events(0, 40))
        wait_for(lambda: published_records(store) >= 40, 60, what="the first events trained")

        # The trainer dies with events queued in the broker: it comes back and trains them all;
        # predict never fails meanwhile.
        trainer = _pid(stack.log(), "trainer")
        produce_records(settings.bootstrap_servers, settings.events_topic, _events(40, 200))
        os.kill(trainer, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: _pid(stack.log(), "trainer", after=trainer), 15, what="a new trainer")
        wait_for(lambda: published_records(store) >= 240, 90, what="every event trained after the restart")
        assert probe.failures == [], f"predict failed {len(probe.failures)} times while only the trainer was down"
        assert probe.successes > 0
        assert time.monotonic() - killed < 90

        # The server dies: its warm spare takes over; predict fails only until it is ready.
        server = _pid(stack.log(), "server")
        wait_for(lambda: "warm spare ready" in stack.log(), 120, what="the warm spare started up")
        os.kill(server, signal.SIGKILL)
        wait_for(lambda: _pid(stack.log(), "server", after=server), 15, what="a new server")
        wait_for(lambda: stack.log().count("server is ready") >= 2, 60, what="the new server ready")
        assert "its warm spare took over" in stack.log()
        served_again = probe.successes
        wait_for(lambda: probe.successes > served_again + 5, 30, what="predict answering again")
        assert _restarts(settings.supervisor_metrics_port) == {"trainer": 1.0, "server": 1.0}
        assert stack.alive()
    finally:
        probe.halt.set()
        status = stack.stop(timeout_s=60)
    children = [int(pid) for pid in re.findall(r"started (?:a warm spare )?\w+ \(pid (\d+)\)", stack.log())]
    assert status == 0, stack.log()[-3000:]
    assert not any(_alive(pid) for pid in children)


def test_a_child_that_cannot_start_stops_the_stack(settings, tmp_path):
    settings = _stack_settings(settings).model_copy(
        update={"restart_max_quick_crashes": 1, "restart_max_delay_ms": 200.0}
    )
    with socket.socket() as taken:  # the server's port is in use: it exits at every start
        taken.bind(("127.0.0.1", settings.http_port))
        taken.listen()
        stack = ServiceProcess("up", settings, tmp_path / "up.log")
        try:
            stack.process.wait(timeout=180)
        finally:
            stack.stop()
    log = stack.log()
    assert stack.process.returncode == 1, log[-3000:]
    assert re.search(r"server exited with status \d+ 2 times in a row", log)
    assert log.count("started server") == 2  # one restart, then it gave up
    assert "streamtune is up" not in log
    trainers = [int(pid) for pid in re.findall(r"started trainer \(pid (\d+)\)", log)]
    assert trainers and not any(_alive(pid) for pid in trainers)
