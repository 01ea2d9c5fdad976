"""`streamtune up`: the whole stack in the foreground — broker (if needed), trainer, server.

Each service runs as its own process (as in production); Ctrl-C or SIGTERM stops them in
reverse order of start, giving the trainer time to publish what it has trained.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from streamtune.broker import EmbeddedBroker
from streamtune.config import Settings

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 30.0


def run_stack(settings: Settings, config_file: Path | None = None) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    broker = None
    env = dict(os.environ)
    if settings.kafka_bootstrap_servers is None:
        broker = EmbeddedBroker(settings.broker_port, binary=settings.broker_bin).start()
        env["STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    command = [sys.executable, "-m", "streamtune.cli"]
    if config_file is not None:
        command += ["--config", str(config_file)]
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        children.append(("trainer", subprocess.Popen([*command, "train"], env=env)))
        children.append(("server", subprocess.Popen([*command, "serve"], env=env)))
        _print_banner(settings, broker)
        while not stop.wait(0.5):
            for name, child in children:
                if child.poll() is not None:
                    logger.error("%s exited with status %s; stopping the stack", name, child.returncode)
                    return child.returncode or 1
        return 0
    finally:
        for name, child in reversed(children):
            _stop_child(name, child)
        if broker is not None:
            broker.stop()


def _stop_child(name: str, child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop within %.0f s; killing it", name, _STOP_GRACE_S)
        child.kill()
        child.wait()


def _print_banner(settings: Settings, broker: EmbeddedBroker | None) -> None:
    host = settings.http_host
    kafka = broker.bootstrap_servers if broker else settings.bootstrap_servers
    kind = "embedded broker" if broker else "external cluster"
    print(
        "\nstreamtune is up\n"
        f"  Kafka ({kind}):   {kafka}   events topic: {settings.events_topic}\n"
        f"  REST:             http://{host}:{settings.http_port}/v1/predict\n"
        f"  server metrics:   http://{host}:{settings.http_port}/metrics\n"
        f"  trainer metrics:  http://{host}:{settings.trainer_metrics_port}/metrics\n"
        f"  checkpoints:      {settings.checkpoint_dir.resolve()}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
