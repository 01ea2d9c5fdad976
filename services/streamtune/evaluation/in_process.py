"""Contenders scored in the evaluation's own process, test-then-train per event: the popularity
floor and River's models. Each scores event ``i`` with a model that has learnt every event
before it (a chunk of one: lag 0), warm-up included, and is reported on the same events as the
served contenders."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamtune.evaluation.contenders import POPULARITY, RIVER_PREFIX
from streamtune.evaluation.event_slice import EventSlice
from streamtune.evaluation.freshness import freshness
from streamtune.evaluation.score_options import Breakdown, RunRecord
from streamtune.evaluation.scoring import ContenderResult, score_contender


@dataclass(frozen=True)
class ScoredSpan:
    """The stream positions every contender is scored on, ``[start, stop)`` (the warm-up
    before them is learnt from, not scored), in windows of ``window`` events; ``cold`` flags
    the cold events among them."""

    start: int
    stop: int
    window: int
    cold: np.ndarray


def in_process_results(events: EventSlice, names: Sequence[str], span: ScoredSpan, seed: int) -> list[ContenderResult]:
    """Score each contender in ``names`` (``popularity``, ``river_*``; seeded with ``seed``)
    on ``span``."""
    from streamtune.evaluation.popularity import popularity_probabilities
    from streamtune.evaluation.river_baselines import build_model, prequential_probabilities

    start, until = span.start, span.stop
    scored = events.events[start:until]
    labels = np.fromiter((int(e.label) for e in scored), dtype=np.int8, count=len(scored))
    timestamps = [e.ts_ms or 0 for e in scored]
    positions = np.arange(start, until)
    # Test-then-train per event: each event is scored by a model that learnt every earlier one.
    lag = freshness(positions, positions, positions).to_dict()
    results = []
    for name in names:
        started = time.perf_counter()
        if name == POPULARITY:
            probabilities = popularity_probabilities(events.raw[:until])
            params = {"library": "streamtune", "model": "PopularityScorer(prior_weight=2.0)"}
        else:
            model, features = build_model(name.removeprefix(RIVER_PREFIX), seed)
            probabilities, _ = prequential_probabilities(model, features, events.raw[:until])
            params = {"library": "river", "model": repr(model), "seed": seed}
        elapsed = time.perf_counter() - started
        results.append(
            score_contender(
                name,
                labels,
                probabilities[start:until],
                Breakdown(window=span.window, timestamps=timestamps, cold=span.cold),
                RunRecord(round(elapsed, 3), {**params, "chunk": 1, "served_by": "in-process", "freshness": lag}),
            )
        )
    return results
