"""Pipeline efficiency: the whole trainer's events/s over a bare loop's on the same events, same run.

The **pipeline** is the real trainer (:class:`~streamtune.trainer.service.TrainerService`, in
this process): Kafka → decode → tokenize → micro-batch → route and score (prequential) → train
step → publish a version (one per batch, the default). Its events are produced beforehand, so it
is never starved by the producer: this is its ceiling. Its rate is read from the store: the
stream events consumed (the versions' Kafka offsets) between the first version and the last,
over the time between their manifests' creation. A watcher thread in the trainer's process stops
the run; it looks at the store every 50 ms and reads a manifest once (at 100 looks a second its
share of the GIL and the cores cost the trainer several percent of its CPU).

The **bare loop** is the same trainer's model family (same model, optimiser, device and
precision, and the same training step: with replay on, each step mixes in the same share of
past examples, the family's way of learning) doing the model's work on the same events,
pre-tokenized the same way, cut into the same batches, with nothing else around it: it trains
on the events the trainer trains on and scores the ones the trainer holds out for its gate
(those the trainer scores and never trains on). Its rate spans the same steps: from the end of
the first to the end of the last. So the ratio is what everything around the model costs:
Kafka, decoding, batching, routing, the prequential scores, the gate's judgements and publishing.
Trained examples/s are reported too (``trained_ratio``).

Both skip the first batch (one-off costs). Runs alternate bare, pipeline, bare, pipeline…; the
ratio reported is the median of the ratios of adjacent pairs (neighbours share the machine's
load), next to the ratio of the medians. Goals: ≥ 0.95 for ``pipeline``, ≥ 0.9 for ``defaults``.

Configurations: ``pipeline`` has no replay and no holdout, and publishes a version after every
batch however many wait (the trainer's own cost only);
``defaults`` runs the trainer as configured by default: replay mixes past examples into each
step (in both loops), the holdout sets 5 % aside for the quality gate, and under the backlog a
version is published only once publishing has taken at most ``STREAMTUNE_PUBLISH_MAX_SHARE`` of
the time. A ``defaults`` run is 90 batches, ``pipeline`` 20 (``RUN_BATCHES`` says why).

The bare loop also reports tokens/s and, on a GPU with a known bf16 peak (or ``--peak-tflops``),
the model FLOPs utilisation (see :mod:`benchmarks.flops`).

Run from the repository root: ``python -m benchmarks.pipeline_efficiency [--quick]``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from benchmarks.flops import EncoderShape, batch_training_flops, bf16_peak_tflops, mfu
from benchmarks.harness import (
    argument_parser,
    base_model_for,
    benchmark_settings,
    embedded_broker,
    encoded,
    format_table,
    machine,
    median,
    synthetic_events,
    wait_until,
    work_directory,
    write_result,
)
from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.kafka.clients import ensure_topics, make_producer
from streamtune.modeling.encoding import PairEncoder
from streamtune.modeling.family import ModelFamily
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.routing import Routes, route
from streamtune.trainer.service import TrainerService

NAME = "pipeline_efficiency"
# The trainer's own cost (``pipeline``), and everything a default trainer does (``defaults``).
GOAL_RATIOS = {"pipeline": 0.95, "defaults": 0.9}
# How often the watcher looks at the store: it shares the trainer's process (and its GIL), so it
# looks seldom enough to cost the trainer nothing measurable, often enough that a run of tens of
# seconds is timed to a fraction of a percent.
WATCH_INTERVAL_S = 0.05
# One partition: the pipeline's batches are the bare loop's batches, event for event.
COMMON = {"events_topic_partitions": 1}
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "pipeline": {"replay_fraction": 0.0, "holdout_share": 0.0, "publish_max_share": 0.0},
    "defaults": {},
}
# Batches per run. At the defaults a backlogged trainer publishes once publishing (mostly the
# gate scoring the candidate on the held-out window, which grows through the run: up to ~2 s for
# MiniLM on 2 cores) has taken 3 % of the time: 9 versions in 90 batches. A run always ends on a
# version (the stream runs dry, nothing waits, so the last batch is published at once), and in a
# short run that last judgement is a large share: 0.894 at 30 batches, 0.933 at 90 (5 pairs each,
# ~29 bare events/s both times), the last of 2 and of 9 judgements in the measured span.
RUN_BATCHES = {"pipeline": 20, "defaults": 90}


@dataclass(frozen=True)
class BareRun:
    examples_per_s: float  # trained examples
    events_per_s: float  # the same events the pipeline consumes (held-out ones scored only)
    cpu_seconds_per_example: float
    attended_tokens_per_s: float
    padded_tokens_per_s: float
    flops_per_s: float


@dataclass(frozen=True)
class PipelineRun:
    examples_per_s: float
    events_per_s: float  # stream events through the trainer: trained ones and held-out ones
    cpu_seconds_per_example: float
    versions: int
    step_busy_fraction: float  # share of the measured time the training step was running
    publish_mean_s: float


def build_trainer(settings: Settings) -> TrainerService:
    torch.manual_seed(settings.seed)
    return TrainerService(settings).setup()


@dataclass(frozen=True)
class Batch:
    """A batch as the trainer's ingest thread builds it, and where the trainer routes its rows
    (:func:`~streamtune.trainer.routing.route`: held out for the gate, or trained)."""

    batch: TrainingBatch
    routes: Routes

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        return self.batch.inputs

    def model_work(self, family: ModelFamily) -> None:
        """What the trainer's model does with this batch (as in ``TrainerService.learn``):
        scores its held-out rows, trains on the rest."""
        if self.routes.held_out.size:
            family.score(self.batch.select(self.routes.held_out))
        family.train(self.batch.select(self.routes.to_train))


def pretokenized(trainer: TrainerService, events: list[dict[str, Any]]) -> list[Batch]:
    """The events cut into the trainer's batches and tokenized as its ingest thread does."""
    encode = PairEncoder(trainer.family.tokenizer, trainer.settings.max_length)
    size = trainer.settings.batch_size
    recent = RecentIds(window=len(events))
    batches = []
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        inputs = encode([e["text"] for e in chunk], [e.get("context") for e in chunk])
        labels = torch.tensor([float(e["label"]) for e in chunk])
        if trainer.device.type == "cuda":
            inputs = {name: tensor.pin_memory() for name, tensor in inputs.items()}
            labels = labels.pin_memory()
        batch = TrainingBatch(
            generation=0, inputs=inputs, labels=labels, event_ids=[e["event_id"] for e in chunk], offsets={}
        )
        batches.append(Batch(batch, route(batch, recent, trainer.settings.holdout_share)))
    return batches


def warm_up(settings: Settings, events: list[dict[str, Any]]) -> None:
    """One step per distinct batch shape, unmeasured: kernels chosen and caches grown for a shape
    would otherwise favour whichever measured run meets it second."""
    trainer = build_trainer(settings)
    shapes: dict[tuple[int, ...], Batch] = {}
    for batch in pretokenized(trainer, events):
        shapes.setdefault(tuple(batch.inputs["input_ids"].shape), batch)
    for batch in shapes.values():
        batch.model_work(trainer.family)


def bare_run(settings: Settings, events: list[dict[str, Any]]) -> BareRun:
    """The trainer's model family doing the model's work on pre-tokenized batches (held-out rows
    scored, the rest trained on), and nothing else."""
    trainer = build_trainer(settings)
    batches = pretokenized(trainer, events)
    shape = EncoderShape.of(trainer.family.learner.model)
    finished = []
    for batch in batches:
        batch.model_work(trainer.family)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        finished.append(time.perf_counter())
        if len(finished) == 1:
            cpu_started = time.process_time()
    cpu_seconds = time.process_time() - cpu_started
    elapsed = finished[-1] - finished[0]
    measured = batches[1:]
    masks = [batch.inputs["attention_mask"] for batch in measured]
    events_count = sum(len(batch.batch) for batch in measured)
    examples = sum(batch.routes.to_train.size for batch in measured)
    return BareRun(
        examples_per_s=examples / elapsed,
        events_per_s=events_count / elapsed,
        cpu_seconds_per_example=cpu_seconds / examples,
        attended_tokens_per_s=sum(int(mask.sum()) for mask in masks) / elapsed,
        padded_tokens_per_s=sum(mask.numel() for mask in masks) / elapsed,
        flops_per_s=sum(batch_training_flops(shape, mask, settings.tuning) for mask in masks) / elapsed,
    )


def produce_events(settings: Settings, events: list[dict[str, Any]]) -> None:
    ensure_topics(settings, [(settings.events_topic, settings.events_topic_partitions)])
    producer = make_producer(settings)
    now_ms = int(time.time() * 1000)
    for index, event in enumerate(events):
        producer.produce(settings.events_topic, value=encoded(event, now_ms + index))
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the benchmark's events were not all acknowledged")


class VersionWatcher(threading.Thread):
    """Watches the store from a side thread (the trainer runs in the main thread, as in
    ``streamtune train``: torch's intra-op threading differs between the main thread and others).

    Records when it first saw a version and when it saw one covering ``expected`` examples, with
    the process's CPU time and the trainer's step time between the two; then stops the trainer.
    """

    def __init__(self, store: CheckpointStore, trainer: TrainerService, expected: int, stop: threading.Event) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self._store, self._trainer, self._expected, self._trainer_stop = store, trainer, expected, stop
        # (time seen, version, examples seen)
        self.first: tuple[float, int, int] | None = None
        self._seen: tuple[float, int, int] | None = None  # the newest version, as first seen
        self.last: tuple[float, int, int] | None = None
        self.cpu_seconds = self.step_seconds = 0.0

    def _newest(self) -> tuple[float, int, int] | None:
        if self._trainer_stop.is_set():
            raise RuntimeError("the trainer stopped")
        version = self._store.latest_version()
        if version is None:
            return None
        if self._seen is None or self._seen[1] != version:  # a manifest is read once
            self._seen = time.perf_counter(), version, self._store.read_manifest(version).examples_seen
        return self._seen

    def _step_seconds(self) -> float:
        return self._trainer.metrics.registry.get_sample_value("streamtune_train_step_seconds_sum") or 0.0

    def run(self) -> None:
        try:
            self.first = wait_until(self._newest, 300, "the first version", interval_s=WATCH_INTERVAL_S)
            cpu_started, step_started = time.process_time(), self._step_seconds()
            self.last = wait_until(
                lambda: (latest := self._newest()) and latest[2] >= self._expected and latest,
                600,
                f"a version covering {self._expected} examples",
                interval_s=WATCH_INTERVAL_S,
            )
            self.cpu_seconds = time.process_time() - cpu_started
            self.step_seconds = self._step_seconds() - step_started
        finally:
            self._trainer_stop.set()


def pipeline_run(settings: Settings, events: list[dict[str, Any]], expected_examples: int) -> PipelineRun:
    """The real trainer consuming pre-produced events; measured from its first version to its last."""
    produce_events(settings, events)
    trainer = build_trainer(settings)
    stop = threading.Event()
    store = CheckpointStore(settings.checkpoint_dir)
    watcher = VersionWatcher(store, trainer, expected_examples, stop)
    watcher.start()
    try:
        trainer.run(stop)
    finally:
        stop.set()
        watcher.join(timeout=10)
    if watcher.first is None or watcher.last is None:
        raise RuntimeError("the trainer stopped before publishing every example (see its log above)")
    seen_from, seen_to = watcher.first, watcher.last
    seen_examples, seen_elapsed = seen_to[2] - seen_from[2], seen_to[0] - seen_from[0]
    # Rates span the store's first version to the last, timed by their manifests: the watcher
    # looks only every WATCH_INTERVAL_S, and may first see a later version than the first.
    first, last = store.read_manifest(store.versions()[0]), store.read_manifest(seen_to[1])
    elapsed = last.created_at_s - first.created_at_s
    samples = trainer.metrics.registry.get_sample_value
    return PipelineRun(
        examples_per_s=(last.examples_seen - first.examples_seen) / elapsed,
        events_per_s=(last.records_through - first.records_through) / elapsed,
        cpu_seconds_per_example=watcher.cpu_seconds / seen_examples,
        versions=last.version - first.version,
        step_busy_fraction=watcher.step_seconds / seen_elapsed,
        publish_mean_s=samples("streamtune_checkpoint_publish_seconds_sum")
        / samples("streamtune_checkpoint_publish_seconds_count"),
    )


def measure(
    fresh_settings: Callable[[], Settings], events: list[dict[str, Any]], config: str, repeats: int
) -> dict[str, Any]:
    """Bare and pipeline runs of ``config``, in pairs; ``fresh_settings`` gives each run its own."""
    bare: list[BareRun] = []
    piped: list[PipelineRun] = []
    warm_up(fresh_settings(), events)
    for _ in range(repeats):
        bare.append(bare_run(fresh_settings(), events))
        settings = fresh_settings()
        trained = len(events) if config == "pipeline" else None
        piped.append(pipeline_run(settings, events, trained or expected_trained(settings, events)))
        print(
            f"  {config}: bare {bare[-1].events_per_s:.1f} events/s, pipeline {piped[-1].events_per_s:.1f} events/s",
            flush=True,
        )
    pairs = list(zip(bare, piped, strict=True))
    # The same events through both: the bare loop does the model's work on them (the held-out
    # ones scored, the rest trained), the pipeline that and everything around it.
    pair_ratios = [p.events_per_s / b.events_per_s for b, p in pairs]
    trained_ratios = [p.examples_per_s / b.examples_per_s for b, p in pairs]
    cpu_ratios = [b.cpu_seconds_per_example / p.cpu_seconds_per_example for b, p in pairs]
    bare_median = median([run.events_per_s for run in bare])
    pipeline_median = median([run.events_per_s for run in piped])
    return {
        "bare_events_per_s": bare_median,
        "pipeline_events_per_s": pipeline_median,
        "bare_examples_per_s": median([run.examples_per_s for run in bare]),
        "pipeline_examples_per_s": median([run.examples_per_s for run in piped]),
        "ratio": median(pair_ratios),
        "trained_ratio": median(trained_ratios),
        "ratio_of_medians": pipeline_median / bare_median,
        "pair_ratios": pair_ratios,
        # Work rather than time: CPU seconds per example, bare over pipeline (whole process).
        "cpu_ratio": median(cpu_ratios),
        "step_busy_fraction": median([run.step_busy_fraction for run in piped]),
        "publish_mean_s": median([run.publish_mean_s for run in piped]),
        "bare_runs": [asdict(run) for run in bare],
        "pipeline_runs": [asdict(run) for run in piped],
    }


def expected_trained(settings: Settings, events: list[dict[str, Any]]) -> int:
    """Stream examples the trainer will train: all but the held-out share."""
    return sum(not is_holdout(event["event_id"], settings.holdout_share) for event in events)


def throughput_rows(result: dict[str, Any], peak: float | None) -> list[tuple[Any, ...]]:
    runs = result["bare_runs"]
    flops = median([run["flops_per_s"] for run in runs])
    utilisation = mfu(flops, peak)
    return [
        ("attended tokens/s", round(median([run["attended_tokens_per_s"] for run in runs]))),
        ("padded tokens/s", round(median([run["padded_tokens_per_s"] for run in runs]))),
        ("model TFLOP/s (attended tokens)", round(flops / 1e12, 4)),
        ("bf16 peak TFLOP/s", peak),
        ("MFU", None if utilisation is None else round(utilisation, 4)),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument(
        "--batches", type=int, default=None, help="batches per run (default: pipeline 20, defaults 90; --quick 4)"
    )
    parser.add_argument("--configs", default=None, help="comma-separated: pipeline, defaults (default: both)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (STREAMTUNE_COMPILE)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="accelerator peak for the MFU")
    args = parser.parse_args(argv)
    run_batches = {config: args.batches or (4 if args.quick else batches) for config, batches in RUN_BATCHES.items()}
    repeats = args.repeats or (1 if args.quick else 3)
    configs = (args.configs or ("pipeline" if args.quick else "pipeline,defaults")).split(",")
    started_machine = machine()
    results: dict[str, Any] = {}
    with work_directory(NAME) as work_dir, embedded_broker(work_dir) as bootstrap:
        base_model = base_model_for(args, work_dir)
        batch_size = benchmark_settings(bootstrap, work_dir, base_model).batch_size
        for config in configs:
            events = synthetic_events(run_batches[config] * batch_size)
            overrides = {**COMMON, **CONFIGURATIONS[config], "device": args.device, "compile": args.compile}
            fresh_settings = functools.partial(benchmark_settings, bootstrap, work_dir, base_model, **overrides)
            results[config] = measure(fresh_settings, events, config, repeats)
        reference = benchmark_settings(bootstrap, work_dir, base_model)
    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    peak = args.peak_tflops or bf16_peak_tflops(device_name)

    rows = [
        (
            config,
            round(result["bare_events_per_s"], 1),
            round(result["pipeline_events_per_s"], 1),
            round(result["ratio"], 3),
            round(result["ratio_of_medians"], 3),
            round(result["trained_ratio"], 3),
            round(result["cpu_ratio"], 3),
            round(result["step_busy_fraction"], 3),
            round(result["publish_mean_s"] * 1000, 1),
        )
        for config, result in results.items()
    ]
    table = format_table(
        (
            "configuration",
            "bare events/s",
            "pipeline events/s",
            "ratio",
            "ratio of medians",
            "trained examples ratio",
            "CPU ratio",
            "step busy",
            "publish ms",
        ),
        rows,
    )
    headline, goal = results[configs[0]]["ratio"], GOAL_RATIOS[configs[0]]
    table += (
        f"\n\npipeline efficiency ({configs[0]}): {headline:.3f} (goal ≥ {goal}: "
        f"{'met' if headline >= goal else 'NOT met'}); median of {repeats} adjacent pairs, "
        f"{run_batches[configs[0]]} batches of {batch_size} per run, on {device_name}"
    )
    table += "\n\nBare training loop\n" + format_table(("figure", "value"), throughput_rows(results[configs[0]], peak))
    payload = {
        "settings": {
            "batches": {config: run_batches[config] for config in configs},
            "batch_size": batch_size,
            "repeats": repeats,
            "base_model": base_model,
            "tuning": reference.tuning,
            "max_length": reference.max_length,
            "device": device_name,
            "compile": args.compile,
            "configurations": {config: {**COMMON, **CONFIGURATIONS[config]} for config in configs},
        },
        "results": results,
        "headline_ratio": headline,
        "goal_ratio": goal,
        "goal_met": headline >= goal,
        "bf16_peak_tflops": peak,
    }
    write_result(args.out, NAME, started_machine, payload, table)
    return payload


if __name__ == "__main__":
    main()
