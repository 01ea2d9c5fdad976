"""The evaluation recipe: every contender on the same slice of the stream, in one run.

Reads top to bottom: plan the boundaries → start the pipeline → warm up (train on the first
share, branch the frozen version) → for each fast chunk: score it with every served contender
(a slow contender scores its whole chunk when the chunk starts), produce it to the fast
lineages and wait for their versions; at the end of a slow chunk the same for the slow
lineages, and retrain the periodic contender when due → score the in-process contenders
(popularity, River) on the same events → one :class:`ContenderResult` per contender, each with
its chunk size, windows and cold-event scores.

Scores cover the events after the warm-up (every contender has had the warm-up to learn from;
the in-process models learn it prequentially, like the rest of the stream).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from streamtune.checkpoints.manifest import offset_key
from streamtune.config import Settings
from streamtune.evaluation.contenders import (
    BRANCHES,
    FAST_LINEAGES,
    IN_PROCESS,
    LINEAGES,
    ONLINE_LORA,
    PERIODIC,
    ScoreLog,
    lineages_needed,
)
from streamtune.evaluation.event_slice import EventSlice
from streamtune.evaluation.in_process import ScoredSpan, in_process_results
from streamtune.evaluation.periodic import PeriodicRetrainer
from streamtune.evaluation.pipeline_driver import LockstepDriver, PipelineLayout, trainer_overrides
from streamtune.evaluation.plan import ChunkSizes, RunPlan, plan_run
from streamtune.evaluation.scoring import ContenderResult, cold_events, roc_auc
from streamtune.evaluation.served_store import ServedStore

WINDOWS = 8  # scored windows when no window size is given
COLD_SIGHTINGS = 3  # an event is cold when its item was seen fewer times than this before

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to compare and how to cut the stream (the model itself comes from the settings)."""

    contenders: tuple[str, ...]
    window: int | None = None  # None: the scored events in WINDOWS equal windows
    chunk_size: int = 512
    fast_chunk_size: int = 8
    fast_batch_size: int = 8
    warmup_share: float = 0.1
    periodic_every: int | None = None
    bootstrap: str | None = None


@dataclass
class EvaluationRun:
    """The results, the plan they were made with, and how long the run took."""

    results: list[ContenderResult]
    plan: RunPlan
    trainer_settings: dict[str, object]
    wall_seconds: float
    window: int
    # Set when the run was interrupted: the stream position scoring stopped at (every contender
    # is scored on the same events, ``[plan.warmup, stopped_at)``).
    stopped_at: int | None = None

    @property
    def scored_until(self) -> int:
        return self.plan.n_events if self.stopped_at is None else self.stopped_at


@dataclass(frozen=True)
class RunScope:
    """What the served contenders are scored on: the events, the plan that cuts them, and the
    score log of each served contender."""

    events: EventSlice
    plan: RunPlan
    logs: dict[str, ScoreLog]


def run_evaluation(events: EventSlice, settings: Settings, config: EvaluationConfig, work_dir: Path) -> EvaluationRun:
    """Run every selected contender on ``events`` and score them prequentially.

    An interrupt (Ctrl-C, SIGTERM) after the warm-up ends the run early but still returns
    results: every contender scored on the whole chunks scored so far.
    """
    started = time.perf_counter()
    sizes = ChunkSizes(settings.batch_size, config.chunk_size, config.fast_chunk_size, config.fast_batch_size)
    plan = plan_run(len(events), sizes, warmup_share=config.warmup_share, periodic_every=config.periodic_every)
    window = config.window or math.ceil(plan.scored / WINDOWS)
    logger.info(
        "evaluating %s on %d events: warm-up %d, chunks of %d (fast: %d), periodic retrain every %d",
        ", ".join(config.contenders), plan.n_events, plan.warmup, plan.chunk, plan.fast_chunk, plan.periodic_every,
    )  # fmt: skip
    served_names = [name for name in config.contenders if name not in IN_PROCESS]
    logs = {name: ScoreLog(name) for name in served_names}
    until = _run_pipeline(RunScope(events, plan, logs), settings, config, work_dir) if served_names else plan.n_events
    if until <= plan.warmup:
        raise KeyboardInterrupt  # stopped before anything was scored: nothing to report
    scored = events.events[plan.warmup : until]
    cold = cold_events([e.item_id for e in events.events[:until]], COLD_SIGHTINGS)[plan.warmup :]
    results = [logs[name].result(scored, plan.warmup, window, cold) for name in served_names]
    in_process = [name for name in config.contenders if name in IN_PROCESS]
    if in_process:
        results += in_process_results(events, in_process, ScoredSpan(plan.warmup, until, window, cold), settings.seed)
    order = {name: index for index, name in enumerate(config.contenders)}
    results.sort(key=lambda result: order[result.name])
    overrides = {
        "transformer": trainer_overrides(plan.chunk, settings.batch_size),
        "hybrid": trainer_overrides(plan.fast_chunk, config.fast_batch_size),
    }
    stopped_at = None if until == plan.n_events else until
    return EvaluationRun(results, plan, overrides, time.perf_counter() - started, window, stopped_at)


def _run_pipeline(scope: RunScope, settings: Settings, config: EvaluationConfig, work_dir: Path) -> int:
    """Warm up, then score and train chunk by chunk; returns the position scoring reached."""
    events, plan, logs = scope.events, scope.plan, scope.logs
    branches = [name for name in BRANCHES if name in logs]
    layout = PipelineLayout(lineages_needed(list(logs)), branches, config.fast_batch_size, config.bootstrap)
    driver = LockstepDriver(settings, plan, work_dir, layout)
    with driver:
        frozen_dir, frozen = _warm_up(driver, events, plan, logs)
        scorers = _scorers(driver, logs, plan)
        fast = [name for name in scorers if name in FAST_LINEAGES]
        slow = [name for name in scorers if name not in FAST_LINEAGES]
        retrainer = None
        if PERIODIC in logs:
            with logs[PERIODIC].timed():
                retrainer = PeriodicRetrainer(settings.model_copy(update={"tuning": "lora"}), frozen_dir, frozen)
        retrain_at = set(plan.retrain_points())
        scoring_started = chunk_started = time.perf_counter()
        slow_start = plan.warmup
        for start, stop in plan.fast_chunks():
            reached = start
            try:
                if plan.is_slow_boundary(start):
                    # The slow versions cannot change before the chunk's end: score it whole.
                    slow_start = start
                    slow_stop = min(start + plan.chunk, plan.n_events)
                    for name in slow:
                        scorers[name].score(events.events[start:slow_stop], logs[name])
                for name in fast:
                    scorers[name].score(events.events[start:stop], logs[name])
                reached = stop
                if stop < plan.n_events:
                    _train(driver, logs, events, (start, stop, stop + plan.fast_chunk), fast)
                if stop < plan.n_events and plan.is_slow_boundary(stop):
                    _train(driver, logs, events, (slow_start, stop, stop), slow)
                    # After the trainers are idle again: a retrain competing with them for the
                    # cores would slow everything down (oversubscribed threads).
                    if retrainer is not None and stop in retrain_at:
                        with logs[PERIODIC].timed():
                            _retrain(driver, retrainer, events, stop)
            except KeyboardInterrupt:
                logger.warning("interrupted: reporting the %d events scored so far", reached - plan.warmup)
                for log in logs.values():
                    log.truncate(reached - plan.warmup)
                return reached
            if plan.is_slow_boundary(stop):
                now = time.perf_counter()
                _log_progress(scope, stop, window_of(config, plan), (now - chunk_started, now - scoring_started))
                chunk_started = now
    return plan.n_events


def window_of(config: EvaluationConfig, plan: RunPlan) -> int:
    """Events per scored window: as configured, else the scored events cut in WINDOWS."""
    return config.window or math.ceil(plan.scored / WINDOWS)


def _train(
    driver: LockstepDriver, logs: dict[str, ScoreLog], events: EventSlice, span: tuple[int, int, int], names: list[str]
) -> None:
    """Feed events ``span`` = (start, stop, ahead) ``[start, stop)`` to the lineages of contenders
    ``names``; wait for their versions (their servers embed the texts of ``[stop, ahead)`` meanwhile)."""
    lineages = [name for name in names if name in driver.lineages]
    if lineages:
        start, stop, ahead = span
        for name, seconds in driver.train(events.raw[start:stop], stop, lineages, events.events[stop:ahead]).items():
            logs[name].busy_seconds += seconds


def _warm_up(driver: LockstepDriver, events: EventSlice, plan: RunPlan, logs: dict[str, ScoreLog]):
    """Train every lineage on the warm-up share; branch the frozen version from the LoRA one."""
    started = time.perf_counter()
    for name, seconds in driver.train(events.raw[: plan.warmup], plan.warmup).items():
        if name in logs:
            logs[name].busy_seconds += seconds
    frozen_dir = frozen = None
    if driver.branches:
        frozen = driver.branch_from(ONLINE_LORA)
        frozen_dir = driver.lineages[ONLINE_LORA].served.store.path_of(frozen.version)
        for name in driver.branches:
            logs[name].busy_seconds += time.perf_counter() - started
            logs[name].params["warmup_version"] = frozen.version
    if ONLINE_LORA not in logs and ONLINE_LORA in driver.lineages:
        driver.retire(ONLINE_LORA)  # it only trained the warm-up the branches start from
    logger.info("warm-up of %d events done in %.1f s", plan.warmup, time.perf_counter() - started)
    return frozen_dir, frozen


def _scorers(driver: LockstepDriver, logs: dict[str, ScoreLog], plan: RunPlan) -> dict[str, ServedStore]:
    scorers = {}
    for name, log in logs.items():
        scorers[name] = driver.lineages[name].served if name in LINEAGES else driver.branches[name]
        log.params.setdefault("served_by", "inference server /v1/predict")
        log.params["chunk"] = plan.fast_chunk if name in FAST_LINEAGES else plan.chunk
        if name in LINEAGES:
            log.params["trainer"] = LINEAGES[name]
    return scorers


def _retrain(driver: LockstepDriver, retrainer: PeriodicRetrainer, events: EventSlice, stop: int) -> None:
    """Retrain on events ``[0, stop)``, publish into the periodic store, wait until served."""
    retrained = retrainer.retrain(events.events[:stop])
    watermark = max((e.ts_ms for e in events.events[:stop] if e.ts_ms is not None), default=None)
    branch = driver.branches[PERIODIC]
    offsets = {offset_key(branch.events_topic, 0): stop}
    manifest = retrainer.publish(branch.store, retrained, offsets=offsets, examples=stop, data_watermark_ms=watermark)
    branch.wait_until_covers(stop, driver.check_children)
    logger.info("periodic: serving version %d (trained on %d events)", manifest.version, stop)


def _log_progress(scope: RunScope, stop: int, window: int, seconds: tuple[float, float]) -> None:
    """A line per chunk with the ETA of the whole run, and the AUCs once per ``window``;
    ``seconds`` is (this chunk, all chunks so far)."""
    events, plan, logs = scope.events, scope.plan, scope.logs
    scored = stop - plan.warmup
    chunk_s, elapsed_s = seconds
    eta_s = elapsed_s / scored * (plan.scored - scored) if scored else 0.0
    logger.info(
        "scored %d/%d events (%.0f%%; chunk took %.1f s; ETA %.0f min)",
        scored,
        plan.scored,
        100 * scored / max(plan.scored, 1),
        chunk_s,
        eta_s / 60,
    )
    if scored % window and stop < plan.n_events:
        return
    labels = [int(e.label) for e in events.events[max(plan.warmup, stop - window) : stop]]
    for name, log in logs.items():
        auc = roc_auc(labels, log.probabilities[-len(labels) :])
        logger.info("  %s: AUC over the last %d events %s", name, len(labels), "—" if auc is None else f"{auc:.4f}")
