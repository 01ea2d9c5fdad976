"""The contenders of an evaluation and what is recorded for each scored event.

- ``frozen``: the LoRA lineage's version after the warm-up, never updated;
- ``online_lora`` / ``online_full``: the trainer process learning online (LoRA / full fine-tuning);
- ``periodic``: retrained from ``frozen`` on everything so far every N events;
- ``online_hybrid`` / ``online_ids``: the trainer process keeping the hybrid (ID + text) family
  fresh, and the same family without text (the ablation that shows what text adds); scored in
  the short *fast* chunks, as fresh as such a model is in production;
- ``popularity``: running per-user and per-item like-rates, no learning
  (:mod:`streamtune.evaluation.popularity`), in-process, updated after every event;
- ``river_logreg`` / ``river_fm``: River's online models (:mod:`streamtune.evaluation.river_baselines`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.freshness import freshness
from streamtune.evaluation.score_options import Breakdown, RunRecord
from streamtune.evaluation.scoring import ContenderResult, score_contender
from streamtune.events import Event

FROZEN = "frozen"
ONLINE_LORA = "online_lora"
ONLINE_FULL = "online_full"
PERIODIC = "periodic"
ONLINE_HYBRID = "online_hybrid"
ONLINE_IDS = "online_ids"
POPULARITY = "popularity"
RIVER_PREFIX = "river_"
CONTENDERS = (
    FROZEN, ONLINE_LORA, ONLINE_FULL, PERIODIC, ONLINE_HYBRID, ONLINE_IDS, POPULARITY, "river_logreg", "river_fm"
)  # fmt: skip
# Contenders derived from the LoRA lineage's warm-up version.
BRANCHES = (FROZEN, PERIODIC)
# Names that select several contenders: every one, and the three that run the whole dataset in
# minutes (the hybrid through the pipeline, and the two in-process baselines it must beat).
GROUPS = {"all": CONTENDERS, "fast": (ONLINE_HYBRID, POPULARITY, "river_fm")}
# Settings each online lineage's trainer and server get on top of the evaluation's own.
LINEAGES: dict[str, dict[str, Any]] = {
    ONLINE_LORA: {"tuning": "lora"},
    ONLINE_FULL: {"tuning": "full"},
    ONLINE_HYBRID: {"model_kind": "hybrid"},
    ONLINE_IDS: {"model_kind": "hybrid", "hybrid_text": False},
}
# Lineages that learn in milliseconds per micro-batch: they get a version every fast chunk.
FAST_LINEAGES = (ONLINE_HYBRID, ONLINE_IDS)
# Contenders scored in this process, test-then-train per event (chunk of one).
IN_PROCESS = (POPULARITY, "river_logreg", "river_fm")


def parse_contenders(text: str) -> list[str]:
    """A comma-separated selection, in the canonical order; a name of :data:`GROUPS` selects
    its members (``all``: every contender).

    >>> parse_contenders("river_fm,frozen")
    ['frozen', 'river_fm']
    >>> parse_contenders("fast")
    ['online_hybrid', 'popularity', 'river_fm']
    """
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    for group, members in GROUPS.items():
        if group in wanted:
            wanted = (wanted - {group}) | set(members)
    unknown = sorted(wanted - set(CONTENDERS))
    if unknown or not wanted:
        choices = ", ".join([*GROUPS, *CONTENDERS])
        raise EvaluationError(f"unknown contenders {unknown or text!r}; choose from {choices}")
    return [name for name in CONTENDERS if name in wanted]


def lineages_needed(contenders: Sequence[str]) -> list[str]:
    """Online lineages (trainer + server) to start: each selected online contender, and the LoRA
    one also for the warm-up the branches start from.

    >>> lineages_needed(["frozen", "online_hybrid", "river_fm"])
    ['online_lora', 'online_hybrid']
    """
    wanted = set(contenders)
    if wanted & set(BRANCHES):
        wanted.add(ONLINE_LORA)
    return [name for name in LINEAGES if name in wanted]


@dataclass
class ScoreLog:
    """Per scored event: the probability, and the serving version's number, coverage and
    data watermark (-1: none); plus the seconds this contender kept the run busy."""

    name: str
    probabilities: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    covered: list[int] = field(default_factory=list)
    watermarks: list[int] = field(default_factory=list)
    busy_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, scores: Sequence[float], version: int, covered: int, watermark_ms: int | None) -> None:
        self.probabilities.extend(scores)
        self.versions.extend([version] * len(scores))
        self.covered.extend([covered] * len(scores))
        self.watermarks.extend([-1 if watermark_ms is None else watermark_ms] * len(scores))

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` scored events (an interrupted chunk is dropped whole)."""
        for values in (self.probabilities, self.versions, self.covered, self.watermarks):
            del values[count:]

    def timed(self) -> _Stopwatch:
        """``with log.timed(): …`` adds the block's duration to :attr:`busy_seconds`."""
        return _Stopwatch(self)

    def result(
        self, events: Sequence[Event], first_position: int, window: int, cold: np.ndarray | None = None
    ) -> ContenderResult:
        """Score the logged probabilities against ``events`` (the scored part of the stream,
        starting at stream position ``first_position``; ``cold`` flags its cold events)."""
        if len(self.probabilities) != len(events):
            raise EvaluationError(f"{self.name} scored {len(self.probabilities)} events, expected {len(events)}")
        labels = np.fromiter((int(e.label) for e in events), dtype=np.int8, count=len(events))
        timestamps = [e.ts_ms or 0 for e in events]
        positions = np.arange(first_position, first_position + len(events))
        lag = freshness(positions, self.covered, self.versions, timestamps, self.watermarks)
        return score_contender(
            self.name,
            labels,
            self.probabilities,
            Breakdown(window=window, timestamps=timestamps, cold=cold),
            RunRecord(round(self.busy_seconds, 3), {**self.params, "freshness": lag.to_dict()}),
        )


class _Stopwatch:
    def __init__(self, log: ScoreLog) -> None:
        self._log = log
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self._log.busy_seconds += time.perf_counter() - self._started
