"""How often the quality gate refuses hybrid candidates, and whether the refused ones were worse.

Replays MovieLens events in-process through the trainer's own gate parts — routing by
:func:`~streamtune.trainer.gate.holdout.is_holdout`, :class:`~streamtune.modeling.hybrid.family.HybridFamily`,
:class:`~streamtune.trainer.gate.judge.Gatekeeper` with the default gate settings — one
candidate every ``--batch`` events, as the trainer does at ``publish_every_batches=1``. For
every refused candidate it scores the candidate and the published weights on the next
``--ahead`` events that follow (events neither has learned): a refusal is *wrong* when the
candidate's log-loss there is lower. Every chunk is also scored by the published version
before anything learns it, as a server would: ``served_auc`` / ``served_logloss`` (after the
first 10 %, against the true labels). ``--open`` publishes every candidate (the gate off);
``--poison START:LENGTH`` flips the labels of a stretch the trainer and the holdout see;
``--catalogue N`` replays N events of the synthetic catalogue stream the freshness benchmark
produces (:func:`benchmarks.hybrid_training.catalogue_events`: fixed tastes, 15 % label noise)
instead of MovieLens.

Run from the repository root::

    HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python -m benchmarks.hybrid_gate --limit 20000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamtune.config import Settings
from streamtune.evaluation.scoring import roc_auc
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.family import HybridFamily
from streamtune.trainer.gate.decision import NOISE_Z, QualityGate
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.gate.judge import Gatekeeper
from streamtune.trainer.monitor.rolling_score import trainer_log_losses


def as_batch(events: Sequence[dict[str, Any]]) -> TrainingBatch:
    """Raw events as the trainer's batch (a hash of the user id stands in for the pseudonym)."""
    return TrainingBatch(
        generation=0,
        inputs={},
        labels=torch.tensor([float(e["label"]) for e in events]),
        event_ids=[e["event_id"] for e in events],
        offsets={},
        user_ids=[hashlib.sha256(str(e["user_id"]).encode()).hexdigest() for e in events],
        texts=[e["text"] for e in events],
        contexts=[e.get("context") for e in events],
        item_ids=[e["item_id"] for e in events],
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=Path, default=Path("/tmp/movielens.jsonl"))
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--catalogue", type=int, default=0, help="N catalogue events instead of --events")
    parser.add_argument("--batch", type=int, default=32, help="events per candidate")
    parser.add_argument("--ahead", type=int, default=256, help="future events a refusal is checked on")
    parser.add_argument("--reasons", type=int, default=5, help="print this many refusal reasons")
    parser.add_argument("--poison", default=None, help="START:LENGTH: flip the labels of this stretch")
    parser.add_argument("--open", action="store_true", help="publish every candidate (the gate off)")
    parser.add_argument("--without-noise", action="store_true", help="the gate's rules as they were (noise_z = 0)")
    parser.add_argument("--no-text", action="store_true", help="the ids-only model (no encoder needed)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/streamtune-hybrid-text-cache.npz"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    if args.catalogue:
        from benchmarks.hybrid_training import catalogue_events

        events = catalogue_events(args.catalogue)
    else:
        with args.events.open() as handle:
            events = [json.loads(line) for _, line in zip(range(args.limit), handle, strict=False)]
    truth = np.array([e["label"] for e in events], dtype=np.float64)
    if args.poison:
        first, length = (int(part) for part in args.poison.split(":"))
        for event in events[first : first + length]:
            event["label"] = 1 - event["label"]
    embedder = None
    if not args.no_text:
        from benchmarks.hybrid_quality import warm_embedder

        embedder = warm_embedder(events, args.cache)
    config = HybridConfig(use_text=embedder is not None, user_rows=16_384, item_rows=16_384)
    family = HybridFamily(HybridLearner(HybridModel(config, embedder)), TrainerMetrics())
    defaults = Settings()
    gate = QualityGate(
        defaults.gate_tolerance, defaults.gate_auc_tolerance, defaults.gate_trim,
        defaults.gate_min_examples, defaults.gate_patience,
    )  # fmt: skip
    gate.noise_z = 0.0 if args.without_noise else NOISE_Z
    keeper = Gatekeeper(gate, family.holdout_window(defaults.holdout_window))
    counts, reasons, served = replay(args, events, family, keeper)
    scored = slice(len(events) // 10, None)  # against the true labels, also where the stream lied
    counts["served_auc"] = round(roc_auc(truth[scored], served[scored]), 4)
    counts["served_logloss"] = round(float(trainer_log_losses(truth[scored], served[scored]).mean()), 4)
    print(json.dumps(counts))
    for reason in reasons[: args.reasons]:
        print(reason)
    return 0


def replay(
    args: argparse.Namespace, events: list[dict[str, Any]], family: HybridFamily, keeper: Gatekeeper
) -> tuple[dict[str, int], list[str], np.ndarray]:
    """Score each chunk with the published version, route and train it, judge a candidate."""
    share = Settings().holdout_share
    keeper.set_published(family.snapshot())
    counts = dict.fromkeys(
        ("candidates", "published", "rejected", "restores", "wrong_refusals", "auc_lower_than_published"), 0
    )
    reasons: list[str] = []
    served = np.zeros(len(events))
    for start in range(0, len(events), args.batch):
        chunk = events[start : start + args.batch]
        # Scored by the published version, as a server would before anything learns the chunk.
        with family.scoring_as(keeper.published_state, None):
            served[start : start + len(chunk)] = family.score(as_batch(chunk))
        held = [e for e in chunk if is_holdout(e["event_id"], share)]
        trained = [e for e in chunk if not is_holdout(e["event_id"], share)]
        if held:
            keeper.holdout.add_batch(as_batch(held), np.arange(len(held)))
        if trained:
            family.train(as_batch(trained))
        state = family.snapshot()
        verdict = keeper.judge(family, state)
        counts["candidates"] += 1
        if verdict.decision.publish or args.open:
            counts["published"] += 1
            keeper.accept(verdict, state)
            continue
        counts["rejected"] += 1
        future = events[start + args.batch : start + args.batch + args.ahead]
        if future and refused_wrongly(family, keeper, state, future):
            counts["wrong_refusals"] += 1
        figures, auc_tolerance = verdict.figures, keeper.gate.auc_tolerance
        if figures.get("holdout_auc", 1.0) < figures.get("holdout_auc_published", 0.0) - auc_tolerance:
            counts["auc_lower_than_published"] += 1
        reasons.append(verdict.decision.reason)
        if verdict.decision.restore:
            counts["restores"] += 1
            family.restore(keeper.published_state)
    return counts, reasons, served


def refused_wrongly(family: HybridFamily, keeper: Gatekeeper, state: object, future: list[dict[str, Any]]) -> bool:
    """Whether the refused candidate has a lower log-loss than the published version on ``future``."""
    labels = np.array([e["label"] for e in future], dtype=np.float64)
    batch = as_batch(future)
    candidate = trainer_log_losses(labels, family.score(batch)).mean()
    with family.scoring_as(keeper.published_state, state):
        published = trainer_log_losses(labels, family.score(batch)).mean()
    return bool(candidate < published)


if __name__ == "__main__":
    raise SystemExit(main())
