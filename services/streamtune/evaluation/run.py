"""The evaluation recipe: every contender on the same slice of the stream, in one run.

Reads top to bottom: plan the boundaries → start the pipeline → warm up (train on the first
share, branch the frozen version) → for each chunk: score it with every served contender,
produce it, retrain the periodic contender when due, wait for the online versions → score the
River baselines on the same events → one :class:`ContenderResult` per contender.

Scores cover the events after the warm-up (every contender has had the warm-up to learn from;
the River models learn it prequentially, like the rest of the stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamtune.config import Settings
from streamtune.evaluation.contenders import (
    BRANCHES,
    ONLINE_FULL,
    ONLINE_LORA,
    PERIODIC,
    RIVER_PREFIX,
    ScoreLog,
    tunings_needed,
)
from streamtune.evaluation.event_slice import EventSlice
from streamtune.evaluation.freshness import freshness
from streamtune.evaluation.periodic import PeriodicRetrainer
from streamtune.evaluation.pipeline_driver import LockstepDriver, trainer_overrides
from streamtune.evaluation.plan import RunPlan, plan_run
from streamtune.evaluation.scoring import ContenderResult, roc_auc, score_contender
from streamtune.evaluation.served_store import ServedStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationConfig:
    """What to compare and how to cut the stream (the model itself comes from the settings)."""

    contenders: tuple[str, ...]
    window: int = 5000
    chunk_size: int = 256
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
    # Set when the run was interrupted: the stream position scoring stopped at (every contender
    # is scored on the same events, ``[plan.warmup, stopped_at)``).
    stopped_at: int | None = None

    @property
    def scored_until(self) -> int:
        return self.plan.n_events if self.stopped_at is None else self.stopped_at


def run_evaluation(events: EventSlice, settings: Settings, config: EvaluationConfig, work_dir: Path) -> EvaluationRun:
    """Run every selected contender on ``events`` and score them prequentially.

    An interrupt (Ctrl-C, SIGTERM) after the warm-up ends the run early but still returns
    results: every contender scored on the whole chunks scored so far.
    """
    started = time.perf_counter()
    plan = plan_run(
        len(events),
        batch_size=settings.batch_size,
        chunk_size=config.chunk_size,
        warmup_share=config.warmup_share,
        periodic_every=config.periodic_every,
    )
    logger.info(
        "evaluating %s on %d events: warm-up %d, chunks of %d, periodic retrain every %d",
        ", ".join(config.contenders), plan.n_events, plan.warmup, plan.chunk, plan.periodic_every,
    )  # fmt: skip
    served_names = [name for name in config.contenders if not name.startswith(RIVER_PREFIX)]
    logs = {name: ScoreLog(name) for name in served_names}
    until = _run_pipeline(events, settings, config, plan, work_dir, logs) if served_names else plan.n_events
    if until <= plan.warmup:
        raise KeyboardInterrupt  # stopped before anything was scored: nothing to report
    scored = events.events[plan.warmup : until]
    results = [logs[name].result(scored, plan.warmup, config.window) for name in served_names]
    kinds = [name.removeprefix(RIVER_PREFIX) for name in config.contenders if name.startswith(RIVER_PREFIX)]
    if kinds:
        results += _river_results(events, plan, until, kinds, settings.seed, config.window)
    order = {name: index for index, name in enumerate(config.contenders)}
    results.sort(key=lambda result: order[result.name])
    overrides = trainer_overrides(plan, settings.batch_size)
    stopped_at = None if until == plan.n_events else until
    return EvaluationRun(results, plan, overrides, time.perf_counter() - started, stopped_at)


def _run_pipeline(
    events: EventSlice,
    settings: Settings,
    config: EvaluationConfig,
    plan: RunPlan,
    work_dir: Path,
    logs: dict[str, ScoreLog],
) -> int:
    """Warm up, then score and train chunk by chunk; returns the position scoring reached."""
    branches = [name for name in BRANCHES if name in logs]
    driver = LockstepDriver(
        settings, plan, work_dir, tunings=tunings_needed(list(logs)), branches=branches, bootstrap=config.bootstrap
    )
    with driver:
        frozen_dir, frozen = _warm_up(driver, events, plan, logs)
        scorers = _scorers(driver, logs)
        retrainer = None
        if PERIODIC in logs:
            with logs[PERIODIC].timed():
                retrainer = PeriodicRetrainer(settings.model_copy(update={"tuning": "lora"}), frozen_dir, frozen)
        retrain_at = set(plan.retrain_points())
        scoring_started = time.perf_counter()
        for start, stop in plan.chunks():
            chunk_started = time.perf_counter()
            try:
                for name, served in scorers.items():
                    served.score(events.events[start:stop], logs[name])
            except KeyboardInterrupt:
                logger.warning("interrupted: reporting the %d events scored so far", start - plan.warmup)
                for log in logs.values():
                    log.truncate(start - plan.warmup)
                return start
            if stop < plan.n_events:
                try:
                    for tuning, seconds in driver.train(events.raw[start:stop], stop).items():
                        logs[f"online_{tuning}"].busy_seconds += seconds
                    # After the trainers are idle again: a retrain competing with them for the
                    # cores would slow everything down (oversubscribed threads).
                    if retrainer is not None and stop in retrain_at:
                        with logs[PERIODIC].timed():
                            _retrain(driver, retrainer, events, stop)
                except KeyboardInterrupt:
                    logger.warning("interrupted: reporting the %d events scored so far", stop - plan.warmup)
                    return stop
            now = time.perf_counter()
            _log_progress(events, plan, logs, stop, config.window, (now - chunk_started, now - scoring_started))
    return plan.n_events


def _warm_up(driver: LockstepDriver, events: EventSlice, plan: RunPlan, logs: dict[str, ScoreLog]):
    """Train every lineage on the warm-up share; branch the frozen version from the LoRA one."""
    started = time.perf_counter()
    for tuning, seconds in driver.train(events.raw[: plan.warmup], plan.warmup).items():
        if f"online_{tuning}" in logs:
            logs[f"online_{tuning}"].busy_seconds += seconds
    frozen_dir = frozen = None
    if driver.branches:
        frozen = driver.branch_from("lora")
        frozen_dir = driver.lineages["lora"].served.store.path_of(frozen.version)
        for name in driver.branches:
            logs[name].busy_seconds += time.perf_counter() - started
            logs[name].params["warmup_version"] = frozen.version
    if ONLINE_LORA not in logs and "lora" in driver.lineages:
        driver.retire("lora")  # it only trained the warm-up the branches start from
    logger.info("warm-up of %d events done in %.1f s", plan.warmup, time.perf_counter() - started)
    return frozen_dir, frozen


def _scorers(driver: LockstepDriver, logs: dict[str, ScoreLog]) -> dict[str, ServedStore]:
    scorers = {}
    for name, log in logs.items():
        if name in (ONLINE_LORA, ONLINE_FULL):
            scorers[name] = driver.lineages[name.removeprefix("online_")].served
        else:
            scorers[name] = driver.branches[name]
        log.params.setdefault("served_by", "inference server /v1/predict")
    return scorers


def _retrain(driver: LockstepDriver, retrainer: PeriodicRetrainer, events: EventSlice, stop: int) -> None:
    """Retrain on events ``[0, stop)``, publish into the periodic store, wait until served."""
    state, loss = retrainer.retrain(events.events[:stop])
    watermark = max((e.ts_ms for e in events.events[:stop] if e.ts_ms is not None), default=None)
    branch = driver.branches[PERIODIC]
    manifest = retrainer.publish(
        branch.store,
        state,
        offsets={branch.topic_key: stop},
        examples=stop,
        data_watermark_ms=watermark,
        last_loss=loss,
    )
    branch.wait_until_covers(stop, driver.check_children)
    logger.info("periodic: serving version %d (trained on %d events)", manifest.version, stop)


def _log_progress(
    events: EventSlice,
    plan: RunPlan,
    logs: dict[str, ScoreLog],
    stop: int,
    window: int,
    seconds: tuple[float, float],
) -> None:
    """A line per chunk with the ETA of the whole run, and the AUCs once per ``window``;
    ``seconds`` is (this chunk, all chunks so far)."""
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


def _river_results(
    events: EventSlice, plan: RunPlan, until: int, kinds: Sequence[str], seed: int, window: int
) -> list[ContenderResult]:
    """River's models learn from every event (warm-up included) and are scored on the same
    events as the other contenders, ``[plan.warmup, until)``."""
    from streamtune.evaluation.river_baselines import build_model, prequential_probabilities

    scored = events.events[plan.warmup : until]
    labels = np.fromiter((int(e.label) for e in scored), dtype=np.int8, count=len(scored))
    timestamps = [e.ts_ms or 0 for e in scored]
    positions = np.arange(plan.warmup, until)
    results = []
    for kind in kinds:
        model, features = build_model(kind, seed)
        started = time.perf_counter()
        probabilities, _ = prequential_probabilities(model, features, events.raw[:until])
        elapsed = time.perf_counter() - started
        # Test-then-train per event: each event is scored by a model that learnt every earlier one.
        lag = freshness(positions, positions, positions)
        results.append(
            score_contender(
                f"{RIVER_PREFIX}{kind}",
                labels,
                probabilities[plan.warmup : until],
                window=window,
                timestamps=timestamps,
                wall_seconds=round(elapsed, 3),
                params={"library": "river", "model": repr(model), "seed": seed, "freshness": lag.to_dict()},
            )
        )
    return results
