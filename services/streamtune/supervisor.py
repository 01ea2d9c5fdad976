"""`streamtune up`: the whole stack in the foreground — broker (if needed), trainer, server.

Each service runs as its own process (as in production) and is supervised: a trainer or server
that dies is restarted with exponential backoff (:mod:`streamtune.supervision`), counted in
``streamtune_child_restarts_total{child}``, while the broker and the other child keep running —
a trainer crash must not cost the events queued in the broker, nor a server crash the training.
The stack stops only on Ctrl-C/SIGTERM (children in reverse order of start, the trainer given
time to publish what it has trained), or when a child crash-loops (it cannot start at all).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from streamtune.broker import EmbeddedBroker
from streamtune.config import Settings
from streamtune.metrics import SupervisorMetrics
from streamtune.supervision import ChildLaunch, CrashLoopError, RestartPolicy, SupervisedChild

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 30.0
_LOOP_INTERVAL_S = 0.2
_PROBE_TIMEOUT_S = 1.0


def run_stack(settings: Settings, config_file: Path | None = None) -> int:
    """Run broker, trainer and server until a signal (0) or a crash loop (1)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    metrics = SupervisorMetrics()
    metrics_server = _start_metrics_server(settings, metrics)
    broker = None
    env = dict(os.environ)
    if settings.kafka_bootstrap_servers is None:
        broker = EmbeddedBroker(settings.broker_port, binary=settings.broker_bin).start()
        env["STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        logger.warning(
            "the embedded broker keeps events in memory only: when `streamtune up` stops, every event "
            "not yet trained is lost. For durability set STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS to a real "
            "Kafka cluster (docker-compose.yml runs Apache Kafka)"
        )
    children = _children(settings, config_file, env, metrics)
    try:
        for child in children:
            child.start()
        return _supervise(children, stop, settings, broker)
    finally:
        for child in reversed(children):
            child.stop(_STOP_GRACE_S)
        if broker is not None:
            broker.stop()
        if metrics_server is not None:
            metrics_server.shutdown()


def restart_policy(settings: Settings) -> RestartPolicy:
    """The restart policy the settings describe."""
    return RestartPolicy(
        initial_delay_s=settings.restart_initial_delay_ms / 1000,
        max_delay_s=settings.restart_max_delay_ms / 1000,
        max_quick_crashes=settings.restart_max_quick_crashes,
    )


def _children(
    settings: Settings, config_file: Path | None, env: dict[str, str], metrics: SupervisorMetrics
) -> list[SupervisedChild]:
    command = [sys.executable, "-m", "streamtune.cli"]
    if config_file is not None:
        command += ["--config", str(config_file)]
    host = settings.http_host
    trainer_metrics = f"http://{host}:{settings.trainer_metrics_port}/metrics"
    probes = {
        "trainer": lambda: _metric_is_one(trainer_metrics, "streamtune_trainer_ready"),
        "server": lambda: _answers_ok(f"http://{host}:{settings.http_port}/readyz"),
    }
    policy = restart_policy(settings)
    return [
        SupervisedChild(
            name,
            ChildLaunch(
                [*command, "train" if name == "trainer" else "serve"],
                env,
                probe,
                standby=name == "server" and settings.restart_warm_spare,
            ),
            policy,
            metrics.child_restarts.labels(child=name),
            metrics.child_up.labels(child=name),
        )
        for name, probe in probes.items()
    ]


def _supervise(
    children: list[SupervisedChild], stop: threading.Event, settings: Settings, broker: EmbeddedBroker | None
) -> int:
    announced = False
    while not stop.wait(_LOOP_INTERVAL_S):
        now = time.monotonic()
        everyone_ready = all(child.ready for child in children)
        for child in children:
            child.spare_may_start = everyone_ready
            try:
                child.check(now)
            except CrashLoopError as error:
                logger.error("%s; stopping the stack", error)
                return 1
        if not announced and all(child.ready for child in children):
            _print_banner(settings, broker)
            announced = True
    return 0


def _start_metrics_server(settings: Settings, metrics: SupervisorMetrics) -> WSGIServer | None:
    """Serve the supervisor's metrics; the stack runs without them if the port is taken."""
    port = settings.supervisor_metrics_port
    try:
        server, _ = start_http_server(port, addr=settings.http_host, registry=metrics.registry)
    except OSError as error:
        logger.warning("supervisor metrics not served on port %d: %s", port, error)
        return None
    return server


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as response:
            return response.status == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def _metric_is_one(url: str, name: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return False
    return any(line.split()[-1] == "1.0" for line in text.splitlines() if line.startswith(f"{name} "))


def _print_banner(settings: Settings, broker: EmbeddedBroker | None) -> None:
    host = settings.http_host
    kafka = broker.bootstrap_servers if broker else settings.bootstrap_servers
    kind = "embedded broker, in memory only" if broker else "external cluster"
    print(
        "\nstreamtune is up\n"
        f"  Kafka ({kind}):   {kafka}   events topic: {settings.events_topic}\n"
        f"  REST:                 http://{host}:{settings.http_port}/v1/predict\n"
        f"  server metrics:       http://{host}:{settings.http_port}/metrics\n"
        f"  trainer metrics:      http://{host}:{settings.trainer_metrics_port}/metrics\n"
        f"  supervisor metrics:   http://{host}:{settings.supervisor_metrics_port}/metrics\n"
        f"  checkpoints:          {settings.checkpoint_dir.resolve()}\n"
        "Crashed processes are restarted. Press Ctrl-C to stop.\n",
        flush=True,
    )
