"""Freshness benchmark: seconds from an event's production to a served version that includes it.

The deployed shape, on loopback: the embedded broker, ``streamtune train`` and ``streamtune
serve`` as child processes with their default settings (LoRA on all-MiniLM-L6-v2, batches of 32
closing after at most 1 s, a version per batch, announcements on the models topic). This
process produces a steady stream (``--rate`` events/s, 40 by default) and asks the server's
``/v1/model`` for each new version as it is served (``newer_than``: the request waits in the
server until the swap, so it errs late by milliseconds).

Per event, freshness is measured from outside, exactly: the producer's delivery report gives
the event's partition, offset and produce time (the Kafka timestamp); a served version includes
it once its manifest's ``kafka_offsets`` for that partition are past the offset; the event's
freshness is the first sighting of such a version minus its produce time. Only events produced
after the warm-up count (the trainer must have joined its group and published, and
``--warmup`` seconds more have passed); after the measured window the producer stops and the
benchmark waits up to ``--drain`` seconds for the last ones.
An event never served by then counts as infinitely stale.

Also reported: the server's own ``streamtune_freshness_seconds`` histogram over the same window,
the ``X-Data-Watermark-Ms`` header of a prediction, and where the time goes (the trainer's and
server's metrics: training step, publish, swap).

Run from the repository root: ``python -m benchmarks.freshness [--quick] [--rate 40]``.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from benchmarks.harness import (
    argument_parser,
    base_model_for,
    benchmark_settings,
    embedded_broker,
    encoded,
    format_table,
    machine,
    percentile,
    synthetic_events,
    wait_until,
    work_directory,
    write_result,
)
from benchmarks.prometheus import Scrape, delta_count, delta_mean, delta_quantile
from streamtune.checkpoints.manifest import offset_key
from streamtune.config import Settings
from streamtune.evaluation.children import ChildService
from streamtune.evaluation.server_client import ServerClient
from streamtune.kafka.clients import ensure_topics, make_producer

NAME = "freshness"
WAIT_S = 1.0  # per /v1/model request waiting for a newer version
GOALS_S = {"p50": 5.0, "p99": 15.0}
HYBRID_GOALS_S = {"p99": 2.0}  # issue 14: ms-long steps and deltas, at 100 events/s
QUANTILES = {"p50": 50, "p95": 95, "p99": 99}


@dataclass
class Stream:
    """What the producer sent: per event, where it landed and when it was produced."""

    keys: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    produced_s: list[float] = field(default_factory=list)
    measured_from: int | None = None  # index of the first measured event
    measured_to: int | None = None
    errors: int = 0

    def delivered(self, error: object, message: Message) -> None:
        if error is not None:
            self.errors += 1
            return
        self.keys.append(offset_key(message.topic(), message.partition()))
        self.offsets.append(message.offset())
        self.produced_s.append(message.timestamp()[1] / 1000)


@dataclass
class Sightings:
    """Versions the server was seen serving: when first seen, and the offsets they cover."""

    seen_at: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    offsets: list[dict[str, int]] = field(default_factory=list)

    def add(self, at: float, version: int, manifest: dict[str, Any]) -> None:
        if self.versions and self.versions[-1] == version:
            return
        self.seen_at.append(at)
        self.versions.append(version)
        self.offsets.append({key: int(value) for key, value in (manifest.get("kafka_offsets") or {}).items()})

    def first_covering(self, key: str, offset: int) -> float | None:
        """When a served version first included the record at ``key``/``offset``."""
        covered = [position.get(key, 0) for position in self.offsets]
        # Offsets only grow along a lineage, so the first covering sighting is found by bisection.
        index = bisect.bisect_right(covered, offset)
        return self.seen_at[index] if index < len(covered) else None


class SteadyProducer(threading.Thread):
    """Sends the events at a steady rate until stopped; stamps each with its send time."""

    def __init__(self, settings: Settings, events: list[dict[str, Any]], rate: float, stream: Stream) -> None:
        super().__init__(name="bench-producer", daemon=True)
        self._settings, self._events, self._rate, self._stream = settings, events, rate, stream
        self.stop_requested = threading.Event()
        self.sent = 0

    def run(self) -> None:
        producer = make_producer(self._settings, **{"linger.ms": 0})
        started = time.perf_counter()
        while not self.stop_requested.is_set() and self.sent < len(self._events):
            delay = started + self.sent / self._rate - time.perf_counter()
            if delay > 0:
                producer.poll(delay)
                continue
            event = self._events[self.sent]
            producer.produce(
                self._settings.events_topic,
                value=encoded(event, int(time.time() * 1000)),
                on_delivery=self._stream.delivered,
            )
            self.sent += 1
            producer.poll(0)
        producer.flush(30)


class Poller(threading.Thread):
    """Asks the server for every version it serves, each request waiting in the server for the
    next swap (up to ``WAIT_S``)."""

    def __init__(self, client: ServerClient, sightings: Sightings) -> None:
        super().__init__(name="bench-poller", daemon=True)
        self._client, self._sightings = client, sightings
        self.stop_requested = threading.Event()

    def run(self) -> None:
        newest = None
        while not self.stop_requested.is_set():
            served = self._client.model(newest, WAIT_S)
            if served is None:
                self.stop_requested.wait(0.05)
                continue
            self._sightings.add(time.time(), *served)
            newest = served[0]


def freshness_of(stream: Stream, sightings: Sightings) -> list[float]:
    """Seconds to being served for each measured event (``inf`` when it never was)."""
    values = []
    for index in range(stream.measured_from or 0, stream.measured_to or len(stream.keys)):
        seen = sightings.first_covering(stream.keys[index], stream.offsets[index])
        values.append(math.inf if seen is None else max(0.0, seen - stream.produced_s[index]))
    return values


def stream_events(args: Any, count: int) -> list[dict[str, Any]]:
    """``--events catalogue`` (the hybrid's default): items whose texts repeat, as real items'
    do, so the text cache works as in production; ``synthetic``: a new text for every event."""
    if args.events == "catalogue" or (args.events is None and args.model_kind == "hybrid"):
        from benchmarks.hybrid_training import catalogue_events

        return catalogue_events(count, seed=int(time.time()))
    return synthetic_events(count)


def run_stream(args: Any, work_dir: Path, base_model: str) -> dict[str, Any]:
    with embedded_broker(work_dir) as bootstrap:
        # A setting not given keeps the model family's default (the hybrid's are its own).
        given = {"publish_max_delay_ms": args.publish_max_delay_ms}
        settings = benchmark_settings(
            bootstrap,
            work_dir,
            base_model,
            lora_layers=args.lora_layers,
            model_kind=args.model_kind,
            **{name: value for name, value in given.items() if value is not None},
        )
        ensure_topics(
            settings,
            [
                (settings.events_topic, settings.events_topic_partitions),
                (settings.dlq_topic, 1),
                (settings.models_topic, 1),
            ],
        )
        trainer = ChildService("trainer", "train", settings, work_dir, threads=args.trainer_threads)
        server = ChildService("server", "serve", settings, work_dir, threads=1)
        children = (trainer, server)
        try:
            return measure(args, settings, children)
        finally:
            for child in children:
                child.stop()


def measure(args: Any, settings: Settings, children: tuple[ChildService, ChildService]) -> dict[str, Any]:
    client = ServerClient(settings.http_port, timeout_s=30)
    trainer_metrics = f"http://{settings.http_host}:{settings.trainer_metrics_port}/metrics"
    server_metrics = f"http://{settings.http_host}:{settings.http_port}/metrics"

    def alive() -> None:
        for child in children:
            child.check_alive()

    client.wait_for_model(lambda version, _: True, 300, "the server to load the base model", alive)
    capacity = int(args.rate * (args.warmup + args.seconds + args.drain + 120))
    stream, sightings = Stream(), Sightings()
    producer = SteadyProducer(settings, stream_events(args, capacity), args.rate, stream)
    poller = Poller(ServerClient(settings.http_port, timeout_s=30), sightings)
    producer.start()
    poller.start()
    try:
        client.wait_for_model(lambda version, _: version >= 1, 300, "the first trained version", alive)
        time.sleep(args.warmup)
        alive()
        before = Scrape.of(trainer_metrics), Scrape.of(server_metrics)
        stream.measured_from = len(stream.keys)
        started = time.time()
        time.sleep(args.seconds)
        stream.measured_to = len(stream.keys)
        producer.stop_requested.set()
        producer.join(timeout=60)
        drain_until = time.time() + args.drain
        wait_until(
            lambda: not any(map(math.isinf, freshness_of(stream, sightings))) or time.time() > drain_until,
            args.drain + 30,
            "the measured events to be served",
            interval_s=0.5,
        )
        alive()
        after = Scrape.of(trainer_metrics), Scrape.of(server_metrics)
        watermark = client.predict([{"text": "a great film", "context": None}]).data_watermark_ms
    finally:
        poller.stop_requested.set()
        producer.stop_requested.set()
        poller.join(timeout=10)
    values = freshness_of(stream, sightings)
    window_s = args.seconds
    return {
        "events_measured": len(values),
        "events_unserved": sum(math.isinf(value) for value in values),
        "produce_errors": stream.errors,
        "achieved_rate": len(values) / window_s,
        "freshness_s": {name: percentile(values, q) for name, q in QUANTILES.items()}
        | {"max": max(values), "mean": sum(values) / len(values) if not any(map(math.isinf, values)) else math.inf},
        "server_histogram_s": {
            name: delta_quantile(before[1], after[1], "streamtune_freshness_seconds", q / 100)
            for name, q in QUANTILES.items()
        }
        | {"observations": delta_count(before[1], after[1], "streamtune_freshness_seconds_count")},
        "watermark_header_ms": watermark,
        "versions_served": len(
            {v for v, at in zip(sightings.versions, sightings.seen_at, strict=True) if at >= started}
        ),
        "trainer": {
            "examples_per_s": delta_count(before[0], after[0], "streamtune_examples_trained_total")
            / (time.time() - started),
            "step_mean_s": delta_mean(before[0], after[0], "streamtune_train_step_seconds"),
            "publish_mean_s": delta_mean(before[0], after[0], "streamtune_checkpoint_publish_seconds"),
            "batch_size_mean": delta_mean(before[0], after[0], "streamtune_train_batch_size"),
            # A refused candidate's events wait for the next published version.
            "gate_rejections": delta_count(before[0], after[0], "streamtune_gate_rejections_total"),
        },
        "server": {"swap_mean_s": delta_mean(before[1], after[1], "streamtune_model_swap_seconds")},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--rate", type=float, default=None, help="events per second (default 40; --quick 20)")
    parser.add_argument("--seconds", type=float, default=None, help="measured window (default 60; --quick 8)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds after the first version (default 10)")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the last measured events")
    parser.add_argument("--trainer-threads", type=int, default=2, help="intra-op threads of the trainer process")
    parser.add_argument(
        "--publish-max-delay-ms", type=int, default=None, help="fold waiting batches into one version (default: off)"
    )
    parser.add_argument("--model-kind", default="text", help="STREAMTUNE_MODEL_KIND (text or hybrid)")
    parser.add_argument(
        "--events",
        choices=["synthetic", "catalogue"],
        default=None,
        help="synthetic: a new text per event; catalogue: 500 items whose texts repeat (default for hybrid)",
    )
    parser.add_argument("--lora-layers", type=int, default=None, help="adapt only the top N layers (default: all)")
    args = parser.parse_args(argv)
    args.rate = args.rate or (20.0 if args.quick else 40.0)
    args.seconds = args.seconds or (8.0 if args.quick else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 10.0)
    started_machine = machine()
    with work_directory(NAME) as work_dir:
        base_model = base_model_for(args, work_dir)
        result = run_stream(args, work_dir, base_model)

    fresh, server = result["freshness_s"], result["server_histogram_s"]
    goals = HYBRID_GOALS_S if args.model_kind == "hybrid" else GOALS_S
    goals_met = {name: fresh[name] <= goal for name, goal in goals.items()}
    rows = [
        ("per event, measured by the client", *(round(fresh[name], 2) for name in QUANTILES), round(fresh["max"], 2)),
        (
            "server histogram (streamtune_freshness_seconds)",
            *(None if server[name] is None else round(server[name], 2) for name in QUANTILES),
            None,
        ),
    ]
    table = format_table(("freshness, seconds", *QUANTILES, "max"), rows)
    trainer = result["trainer"]
    table += (
        f"\n\nmodel family {args.model_kind}; LoRA on {f'the top {args.lora_layers}' if args.lora_layers else 'all'} "
        f"layers, publish max delay {args.publish_max_delay_ms or 'the default'} ms; "
        f"{result['events_measured']} events at {args.rate:g}/s over {args.seconds:g} s "
        f"({result['events_unserved']} never served within the drain), {result['versions_served']} versions served; "
        f"trainer {trainer['examples_per_s']:.1f} examples/s, step {trainer['step_mean_s'] or 0:.3f} s "
        f"(mean batch {trainer['batch_size_mean'] or 0:.1f}), "
        f"publish {(trainer['publish_mean_s'] or 0) * 1000:.0f} ms, gate rejections {trainer['gate_rejections']:.0f}, "
        f"server swap {(result['server']['swap_mean_s'] or 0) * 1000:.0f} ms"
        f"\nX-Data-Watermark-Ms of a prediction at the end: {result['watermark_header_ms']}"
        + "\ngoals: "
        + ", ".join(f"{name} ≤ {goal:g} s {'met' if goals_met[name] else 'NOT met'}" for name, goal in goals.items())
    )
    payload = {
        "settings": {
            "rate": args.rate,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "drain": args.drain,
            "model_wait_s": WAIT_S,
            "base_model": base_model,
            "trainer_threads": args.trainer_threads,
            "lora_layers": args.lora_layers,
            "publish_max_delay_ms": args.publish_max_delay_ms,
            "model_kind": args.model_kind,
            "events": args.events or ("catalogue" if args.model_kind == "hybrid" else "synthetic"),
        },
        **result,
        "goals_s": goals,
        "goals_met": goals_met,
    }
    write_result(args.out, NAME, started_machine, payload, table)
    return payload


if __name__ == "__main__":
    main()
