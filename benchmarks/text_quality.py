"""Prequential quality of the text family (LoRA or full), in-process, old settings against new.

Runs the real text family (:func:`streamtune.modeling.text.family.build`: its encoder, replay
buffer, learner and step) test-then-train over the first events of ``ml-latest-small``: each
micro-batch is scored by the training step's own forward pass before the model learns it, as the
trainer's prequential monitor does. Every configuration sees the same events in the same run, so
the comparison holds under whatever load the machine has. A configuration is ``NAME`` or
``NAME:SETTING=VALUE,...`` with settings as in :class:`streamtune.config.Settings`; the two
defaults are the text family as it was (``pooler`` head, one rate, 32 tokens as the published
slice used) and as it is now.

Prints overall AUC and log-loss, AUC per window and events/s, and the running AUC as it goes.
Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.text_quality --limit 8000

Measured (LoRA, first 8,000 events, batches of 32, one thread, 2 shared cores at load ~10):
before AUC 0.553, log-loss 0.688 (windows 0.461 0.573 0.603 0.498); after (text_mean pooling,
head rate 1e-2, 64 tokens) AUC 0.602, log-loss 0.680 (windows 0.529 0.633 0.626 0.564).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamtune.config import Settings
from streamtune.datasets.movielens import movielens_events
from streamtune.evaluation.scoring import log_loss, roc_auc
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.text.family import build

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"
DEFAULT_CONFIGS = (
    "before:pooling=pooler,head_learning_rate=5e-4,max_length=32",
    "after:max_length=64",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=6000, help="first N events")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--tuning", default="lora", choices=("lora", "full"))
    parser.add_argument("--config", action="append", help="NAME[:SETTING=VALUE,...] (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)  # a shared machine: one core per run

    events = list(movielens_events(args.data, limit=args.limit))
    labels = np.array([int(e["label"]) for e in events], dtype=np.int8)
    print(f"{len(events)} events, {labels.mean():.3f} liked, batches of {args.batch}, tuning {args.tuning}")
    rows = []
    for spec in args.config or DEFAULT_CONFIGS:
        name, overrides = parse_config(spec)
        settings = Settings(tuning=args.tuning, batch_size=args.batch, **overrides)
        started = time.perf_counter()
        probabilities = prequential(events, settings, args.batch, name)
        elapsed = time.perf_counter() - started
        window = math.ceil(len(events) / args.windows)
        windows = [
            roc_auc(labels[s : s + window], probabilities[s : s + window]) for s in range(0, len(events), window)
        ]
        row: dict[str, Any] = {
            "name": name, "settings": overrides, "auc": roc_auc(labels, probabilities),
            "logloss": log_loss(labels, probabilities), "windows": windows,
            "events_per_s": len(events) / elapsed,
        }  # fmt: skip
        rows.append(row)
        print(
            f"{name:>10}: AUC {row['auc']:.4f}  log-loss {row['logloss']:.4f}  windows "
            + " ".join(f"{w:.3f}" for w in windows)
            + f"  {row['events_per_s']:.1f} events/s"
        )
    if args.json:
        args.json.write_text(json.dumps({"limit": len(events), "batch": args.batch, "results": rows}, indent=2))
    return 0


def parse_config(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,...`` → (name, settings overrides; values parsed as JSON where they parse)."""
    name, _, rest = spec.partition(":")
    overrides: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def prequential(events: Sequence[dict[str, Any]], settings: Settings, batch: int, name: str) -> np.ndarray:
    """Each micro-batch scored by the family's own training step (before it learns), in order."""
    torch.manual_seed(settings.seed)
    family = build(settings, torch.device("cpu"), TrainerMetrics())
    encode = family.batch_encoder()
    labels = np.array([int(e["label"]) for e in events], dtype=np.int8)
    probabilities = np.zeros(len(events))
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        inputs = encode([e["text"] for e in chunk], [e["context"] or None for e in chunk])
        training = TrainingBatch.of_inputs(inputs, torch.tensor([float(e["label"]) for e in chunk]))
        probabilities[start : start + len(chunk)] = family.train(training).scores
        done = start + len(chunk)
        if (start // batch) % 25 == 24:
            print(
                f"  {name}: {done} events, running AUC {roc_auc(labels[:done], probabilities[:done]):.4f}", flush=True
            )
    return probabilities


if __name__ == "__main__":
    raise SystemExit(main())
