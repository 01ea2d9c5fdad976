"""The `streamtune` command: one sub-command per process or tool.

The only place that configures logging and builds the settings.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from streamtune.config import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return args.handler(args) or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamtune", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="env file with STREAMTUNE_* settings")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(title="commands")

    up = commands.add_parser("up", help="run broker (if none configured), trainer and server")
    up.set_defaults(handler=_up)

    train = commands.add_parser("train", help="run the online trainer")
    train.set_defaults(handler=_train)

    serve = commands.add_parser("serve", help="run the inference server")
    serve.set_defaults(handler=_serve)

    broker = commands.add_parser("broker", help="run the embedded Kafka-compatible broker alone")
    broker.add_argument("--port", type=int, default=None, help="listen port (default 9092)")
    broker.add_argument("--host", default="127.0.0.1")
    broker.set_defaults(handler=_broker)

    replay = commands.add_parser("replay", help="produce a JSONL file of events to the events topic")
    replay.add_argument("file", type=Path)
    replay.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    replay.add_argument("--limit", type=int, default=None, help="stop after this many events")
    replay.add_argument("--no-progress", action="store_true")
    replay.set_defaults(handler=_replay)

    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands: argparse._SubParsersAction) -> None:
    from streamtune.datasets.cli import add_datasets_command

    add_datasets_command(commands)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _up(args: argparse.Namespace) -> int:
    from streamtune.supervisor import run_stack

    return run_stack(_settings(args), args.config)


def _train(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from streamtune.trainer.service import TrainerService

    settings = _settings(args)
    stop = _stop_on_signals()
    trainer = TrainerService(settings)
    start_http_server(settings.trainer_metrics_port, addr=settings.http_host, registry=trainer.metrics.registry)
    trainer.setup()
    trainer.run(stop)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from streamtune.inference.server import serve

    serve(_settings(args))
    return 0


def _broker(args: argparse.Namespace) -> int:
    from streamtune.broker import EmbeddedBroker

    settings = _settings(args)
    broker = EmbeddedBroker(args.port or settings.broker_port, host=args.host, binary=settings.broker_bin)
    stop = _stop_on_signals()
    with broker:
        print(f"broker listening on {broker.bootstrap_servers}; Ctrl-C to stop", flush=True)
        stop.wait()
    return 0


def _replay(args: argparse.Namespace) -> int:
    from streamtune.replay import replay

    summary = replay(_settings(args), args.file, rate=args.rate, limit=args.limit, progress=not args.no_progress)
    print(summary, file=sys.stderr)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
