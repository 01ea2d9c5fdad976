"""The `streamtune` command: one sub-command per process or tool.

The only place that configures logging and builds the settings.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from streamtune import store_commands
from streamtune.config import Settings, load_settings
from streamtune.errors import ConfigurationError, StreamtuneError
from streamtune.logs import configure_logging
from streamtune.memory_trim import start_periodic_trim
from streamtune.preflight import (
    missing_dependency_message,
    require_free_disk,
    require_packages,
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    if args.log_level is not None:
        # Through the environment, so the processes `streamtune up` starts log at this level too.
        os.environ["STREAMTUNE_LOG_LEVEL"] = args.log_level
    debug = (args.log_level or os.environ.get("STREAMTUNE_LOG_LEVEL", "")).lower() == "debug"
    command = _command_name(argv)
    try:
        require_packages(command, *_OPTIONAL_NEEDS.get(command, ()))
        if command == "evaluate":  # stores, logs and checkpoints of every contender
            work_dir = getattr(args, "work_dir", None) or Path(tempfile.gettempdir())
            require_free_disk(work_dir if work_dir.exists() else work_dir.parent, _EVALUATE_DISK_BYTES, "evaluate")
        args.settings = load_settings(args.config)
        configure_logging(args.settings.log_level, args.settings.log_format)
        return args.handler(args) or 0
    except ConfigurationError as error:
        return _fail(command, error, 2, debug)
    except StreamtuneError as error:
        return _fail(command, error, 1, debug)
    except ModuleNotFoundError as error:
        advice = missing_dependency_message(error)
        if advice is None:
            return _fail(command, error, 1, debug, with_type=True)
        return _fail(command, ConfigurationError(advice), 2, debug)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if type(error).__name__ == "KafkaException" and hasattr(args, "settings"):
            return _fail(command, StreamtuneError(_kafka_problem(error, args.settings)), 1, debug)
        return _fail(command, error, 1, debug, with_type=True)


def _kafka_problem(error: Exception, settings: Settings) -> str:
    cause = error.args[0] if error.args else error
    reason = cause.str() if hasattr(cause, "str") else str(cause)
    return (
        f"Kafka at {settings.bootstrap_servers} did not answer ({reason}); is the broker running "
        "(`streamtune up`), and is STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS right?"
    )


def _fail(command: str, error: BaseException, status: int, debug: bool, with_type: bool = False) -> int:
    """Report ``error`` in a line or two (the traceback only at debug level); returns ``status``."""
    if debug:
        traceback.print_exception(error)
    kind = f"{type(error).__name__}: " if with_type else ""
    for line in f"{kind}{error}".splitlines() or [type(error).__name__]:
        print(f"streamtune {command}: error: {line}", file=sys.stderr)
    if with_type and not debug:
        print("(run with --log-level debug for the traceback)", file=sys.stderr)
    return status


def _command_name(argv: list[str] | None) -> str:
    words = sys.argv[1:] if argv is None else argv
    return next((word for word in words if not word.startswith("-") and word in _COMMANDS), "").strip() or "?"


def _add_common_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """``--config`` and ``--log-level``, accepted before and after the sub-command alike."""
    default = argparse.SUPPRESS if after_command else None  # after: only overrides when given
    parser.add_argument("--config", type=Path, default=default, help="env file with STREAMTUNE_* settings")
    parser.add_argument(
        "--log-level", default=default, choices=["debug", "info", "warning", "error"], help="default: info"
    )


def _add_common_options_to_commands(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _COMMANDS.add(name)
                if "--log-level" not in sub._option_string_actions:
                    _add_common_options(sub, after_command=True)
                _add_common_options_to_commands(sub)


_COMMANDS: set[str] = set()
_SUPERVISED_COMMANDS = frozenset({"train", "serve"})
# Optional packages a command needs, checked before it starts rather than after an hour's work.
_OPTIONAL_NEEDS = {"evaluate": ("river", "matplotlib")}
# A 1,500-event evaluation left 437 MB of stores and logs; the full slice needs a few times that.
_EVALUATE_DISK_BYTES = 2 << 30


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamtune", description=__doc__.splitlines()[0])
    _add_common_options(parser, after_command=False)
    commands = parser.add_subparsers(title="commands")

    up = commands.add_parser("up", help="run broker (if none configured), trainer and server")
    up.set_defaults(handler=_up)

    train = commands.add_parser("train", help="run the online trainer")
    train.add_argument(
        "--bootstrap",
        type=Path,
        metavar="FILE",
        help="first train on this historical JSONL file of events and publish it as version 1 "
        "(skipped when the store already holds a version), then follow the live stream",
    )
    train.add_argument(
        "--nproc", type=int, metavar="N", help="N data-parallel ranks on this machine (runs torchrun; see Scaling out)"
    )
    train.add_argument("--max-restarts", type=int, default=3, help="with --nproc: group restarts after a rank dies")
    train.set_defaults(handler=_train)

    rollback = commands.add_parser("rollback", help="serve an older version again (newer ones are kept)")
    rollback.add_argument("--to", type=int, required=True, metavar="N", help="the version to serve")
    rollback.set_defaults(handler=lambda args: store_commands.rollback(_settings(args), args.to))

    forget = commands.add_parser(
        "forget", help="purge a user's events from the trainer's replay buffer and holdout window"
    )
    forget.add_argument("user_id", help="the user id as events carry it")
    forget.set_defaults(handler=lambda args: store_commands.forget(_settings(args), args.user_id))

    serve = commands.add_parser("serve", help="run the inference server")
    serve.add_argument(
        "--standby", action="store_true", help="(used by `streamtune up`) start up, then wait for 'go' on stdin"
    )
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

    # The processes `streamtune up` (re)starts skip importing the demo, dataset and evaluation
    # commands: about a second of CPU at every restart, several on loaded cores.
    if _command_word(sys.argv[1:] if argv is None else argv) not in _SUPERVISED_COMMANDS:
        _add_optional_commands(commands)
    _add_common_options_to_commands(parser)
    return parser


def _command_word(words: list[str]) -> str | None:
    """The sub-command named on a command line (the values of the common options skipped)."""
    words = iter(words)
    for word in words:
        if word in ("--config", "--log-level"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _add_optional_commands(commands: argparse._SubParsersAction) -> None:
    from streamtune.datasets.cli import add_datasets_command
    from streamtune.demo.cli import add_demo_command
    from streamtune.evaluation.cli import add_evaluate_command

    add_datasets_command(commands)
    add_evaluate_command(commands)
    add_demo_command(commands)


def _settings(args: argparse.Namespace) -> Settings:
    return args.settings if hasattr(args, "settings") else load_settings(args.config)


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

    from streamtune.distributed import launch
    from streamtune.distributed.group import RankInfo
    from streamtune.trainer.service import TrainerService

    if args.nproc is not None:  # one node: torchrun starts the ranks (and restarts the group)
        passed = ["--config", str(args.config)] if args.config else []
        return launch.exec_torchrun(args.nproc, args.max_restarts, passed)
    settings = _settings(args)
    stop = _stop_on_signals()
    rank = RankInfo.from_environment()
    if rank.distributed:  # a rank started by torchrun
        return launch.train_rank(settings, rank, stop, args.bootstrap)
    trainer = TrainerService(settings)
    start_periodic_trim()  # freed tensor buffers back to the system (see memory_trim)
    start_http_server(settings.trainer_metrics_port, addr=settings.http_host, registry=trainer.metrics.registry)
    trainer.setup()
    if args.bootstrap is not None:
        trainer.bootstrap(args.bootstrap)
    trainer.metrics.trainer_ready.set(1)  # what `streamtune up` waits for
    trainer.run(stop)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from streamtune.inference.server import serve

    start_periodic_trim()  # freed tensor buffers back to the system (see memory_trim)
    serve(_settings(args), standby=args.standby)
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
    from streamtune.replay import ReplayPace, replay

    if not args.file.is_file():  # before connecting or creating topics
        raise ConfigurationError(f"{args.file}: no such events file")
    pace = ReplayPace(rate=args.rate, limit=args.limit, progress=not args.no_progress)
    summary = replay(_settings(args), args.file, pace)
    print(summary, file=sys.stderr)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
