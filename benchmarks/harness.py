"""What every benchmark script shares: arguments, the machine's state, events, the broker, output.

A benchmark prints a table and writes a JSON document (``benchmarks/results/<name>.json`` by
default) holding its figures, its settings and the state of the machine when it ran: the load
average at the start and the end matters on a shared machine, where only ratios measured in the
same run are comparable between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from streamtune.broker import EmbeddedBroker
from streamtune.config import Settings
from streamtune.evaluation.children import free_port
from streamtune.modeling.base import resolve_base_model

RESULTS_DIR = Path(__file__).resolve().parent / "results"

_ADJECTIVES = {
    1: ("great", "wonderful", "excellent", "loved", "brilliant", "moving", "superb", "gripping"),
    0: ("awful", "boring", "terrible", "hated", "dull", "clumsy", "tedious", "poor"),
}
_WORDS = (
    *("film", "story", "love", "war", "space", "detective", "family", "comedy", "drama", "night"),
    *("city", "music", "road", "dream", "ghost", "king", "robot", "island", "winter", "summer"),
    *("secret", "journey", "friend", "enemy", "heart", "machine", "river", "fire", "ocean"),
)
_GENRES = ("drama", "comedy", "thriller", "romance", "sci-fi", "horror", "documentary", "animation")


# --- arguments and models ----------------------------------------------------------------------
def argument_parser(description: str, name: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick``, ``--base-model``, ``--out``, ``--repeats``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run (tiny random BERT, few events) that only checks it works"
    )
    parser.add_argument(
        "--base-model", default=None, help="model directory (default: all-MiniLM-L6-v2; with --quick a tiny BERT)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure; the median is reported")
    return parser


def base_model_for(args: argparse.Namespace, work_dir: Path) -> str:
    """The model to measure: the one given, a tiny random BERT for ``--quick``, else MiniLM."""
    if args.base_model:
        return args.base_model
    if args.quick:
        from streamtune.testing.tiny_models import save_tiny_bert

        return save_tiny_bert(work_dir / "tiny-bert", tokenizer_from=resolve_base_model(None))
    return resolve_base_model(None)


@contextlib.contextmanager
def work_directory(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"streamtune-{name}-") as temp:
        yield Path(temp)


# --- the machine ---------------------------------------------------------------------------------
def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, load, torch and the accelerator, if any."""
    description: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_1_5_15": load_average(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        description["gpu"] = torch.cuda.get_device_name(0)
    return description


# --- events --------------------------------------------------------------------------------------
def synthetic_events(count: int, seed: int = 0, prefix: str | None = None) -> list[dict[str, Any]]:
    """Events with a learnable signal (the adjective decides the label) and texts of 8–40 words.

    ``ts`` is left out: the producing benchmark stamps each event as it sends it.
    """
    rng = random.Random(seed)
    prefix = prefix or uuid.uuid4().hex[:8]
    events = []
    for index in range(count):
        label = rng.randrange(2)
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 38))]
        words.insert(rng.randrange(len(words)), rng.choice(_ADJECTIVES[label]))
        events.append(
            {
                "event_id": f"{prefix}-{index}",
                "user_id": f"u{rng.randrange(200)}",
                "item_id": f"i{rng.randrange(1000)}",
                "text": f"title {index}: " + " ".join(words),
                "context": "likes " + ", ".join(rng.sample(_GENRES, 3)),
                "label": label,
            }
        )
    return events


def encoded(event: dict[str, Any], ts_ms: int | None = None) -> bytes:
    """The Kafka value of ``event``, stamped with ``ts_ms`` when given."""
    return json.dumps(event if ts_ms is None else {**event, "ts": ts_ms}).encode()


# --- infrastructure ------------------------------------------------------------------------------
@contextlib.contextmanager
def embedded_broker(work_dir: Path) -> Iterator[str]:
    """An embedded broker on a free port; yields its bootstrap address."""
    with EmbeddedBroker(free_port(), log_path=work_dir / "broker.log") as broker:
        yield broker.bootstrap_servers


def benchmark_settings(bootstrap: str, work_dir: Path, base_model: str, **overrides: Any) -> Settings:
    """Settings with their own topics, group and store; everything else as configured by default."""
    unique = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "events_topic": f"bench-events-{unique}",
        "models_topic": f"bench-models-{unique}",
        "trainer_group_id": f"bench-trainer-{unique}",
        "base_model": base_model,
        "checkpoint_dir": work_dir / f"store-{unique}",
        "http_port": free_port(),
        "trainer_metrics_port": free_port(),
        **overrides,
    }
    return Settings(_env_file=None, **values)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --- statistics and output -----------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats get three significant decimals at most."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return "—" if value is None else str(value)

    cells = [[cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for row, raw in zip(cells, rows, strict=True):
        aligned = [
            value.rjust(width) if isinstance(original, (int, float)) else value.ljust(width)
            for value, width, original in zip(row, widths, raw, strict=True)
        ]
        lines.append("  ".join(aligned).rstrip())
    return "\n".join(lines)


def write_result(out: Path, name: str, started_machine: dict[str, Any], payload: dict[str, Any], table: str) -> None:
    """Print ``table`` and write the JSON document: figures, settings, machine before and after."""
    document = {
        "benchmark": name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": started_machine,
        "load_average_at_end": load_average(),
        **payload,
        "table": table,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(table)
    print(f"\nwritten to {out}")
