"""Ingest benchmark: how many events per second the stages before training can take.

1. **decode + validate** (:func:`streamtune.events.decode_event`), **tokenize**
   (:func:`streamtune.modeling.encoding.encode_pairs`, the fast tokenizer in batches) and both
   together, on one core (the process is pinned to a single CPU; goal: ≥ 20k events/s together);
2. **raw consume** from the broker: a plain consumer reading pre-produced events (and the rate
   at which one producer wrote them);
3. **ingest thread**: the trainer's :class:`~streamtune.ingest.consumer.EventIngestor` (consume →
   decode → micro-batch → tokenize → hand-off) with nothing training, i.e. the most the trainer
   could ever be fed.

Each figure is the median of ``--repeats`` runs. Run from the repository root:
``python -m benchmarks.ingest [--quick] [--events N]``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

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
from streamtune.config import Settings
from streamtune.events import Event, decode_event
from streamtune.ingest.consumer import EventIngestor
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.ingestor_parts import IngestConfig, KafkaClients, TrainerLink
from streamtune.ingest.positions import TrainedPosition
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.kafka.clients import client_config, ensure_topics, make_consumer, make_producer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import load_tokenizer
from streamtune.modeling.encoding import PairEncoder, encode_pairs

NAME = "ingest"
MAX_LENGTH = 128
MAX_TEXT_CHARS = 4096
TOKENIZE_BATCHES = (32, 256)
GOAL_EVENTS_PER_S = 20_000
Encode = Callable[[list[str], list[str | None]], dict[str, torch.Tensor]]


# --- one core: decode, tokenize ------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    """Events per second of wall time, and per second of this process's CPU time.

    On a shared machine the wall-clock rate counts other processes' work too; the CPU-time rate
    is what one core does when it is ours, and is the figure compared with the goal.
    """

    wall: float
    cpu: float


def timed(count: int, work: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Rate(count / (time.perf_counter() - wall), count / max(time.process_time() - cpu, 1e-9))


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def median_rate(rates: list[Rate]) -> Rate:
    return Rate(median([r.wall for r in rates]), median([r.cpu for r in rates]))


def on_one_core() -> tuple[set[int], int]:
    """Pin this process to one CPU (and torch to one thread); returns what to restore."""
    previous = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(previous[0])})
    torch.set_num_threads(1)
    return previous


def restore_cores(previous: tuple[set[int], int]) -> None:
    os.sched_setaffinity(0, previous[0])
    torch.set_num_threads(previous[1])


def decode_all(values: list[bytes]) -> list[Event]:
    decoded = [decode_event(value, MAX_TEXT_CHARS) for value in values]
    if not all(isinstance(event, Event) for event in decoded):
        raise RuntimeError("the benchmark's events must all be valid")
    return decoded


def tokenize_all(encode: Encode, events: list[Event], batch: int) -> None:
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        encode([e.text for e in chunk], [e.context for e in chunk])


def decode_and_tokenize_all(encode: Encode, values: list[bytes], batch: int) -> None:
    for start in range(0, len(values), batch):
        chunk = [decode_event(value, MAX_TEXT_CHARS) for value in values[start : start + batch]]
        encode([e.text for e in chunk], [e.context for e in chunk])


def one_core_rates(tokenizer: Any, values: list[bytes], repeats: int) -> dict[str, Rate]:
    """Decode, tokenize, and both, with the ingest thread's encoder (memoised, and the plain Rust
    path) and the plain HF call.

    Each timed run takes events it has never seen (a new seed), so the memoised encoder gains
    only what a long-running trainer would: words and contexts it met before, never a whole
    repeated text (every synthetic text is unique).
    """
    count = len(values)
    encoders: dict[str, Encode] = {
        "pair_encoder": PairEncoder(tokenizer, MAX_LENGTH),
        "pair_encoder_rust": PairEncoder(tokenizer, MAX_LENGTH, memoise=False),
        "hf_call": lambda texts, contexts: encode_pairs(tokenizer, texts, contexts, MAX_LENGTH),
    }
    fresh = iter(range(1, 1_000_000))

    def new_values() -> list[bytes]:
        return [encoded(event, 1_700_000_000_000) for event in synthetic_events(count, seed=next(fresh))]

    def tokenize_unseen(encode: Encode, batch: int) -> Rate:
        events = decode_all(new_values())
        return timed(count, lambda: tokenize_all(encode, events, batch))

    def decode_and_tokenize_unseen(encode: Encode, batch: int) -> Rate:
        unseen = new_values()
        return timed(count, lambda: decode_and_tokenize_all(encode, unseen, batch))

    previous = on_one_core()
    try:
        figures = {"decode_validate": median_rate([timed(count, lambda: decode_all(values)) for _ in range(repeats)])}
        for name, encode in encoders.items():
            for batch in TOKENIZE_BATCHES:
                figures[f"tokenize_{name}_batch_{batch}"] = median_rate(
                    [tokenize_unseen(encode, batch) for _ in range(repeats)]
                )
                figures[f"decode_validate_tokenize_{name}_batch_{batch}"] = median_rate(
                    [decode_and_tokenize_unseen(encode, batch) for _ in range(repeats)]
                )
    finally:
        restore_cores(previous)
    return figures


# --- the broker ----------------------------------------------------------------------------------
def produce_all(settings: Settings, values: list[bytes]) -> float:
    """Write ``values`` to the events topic; returns events/s until every one is acknowledged."""
    producer = make_producer(settings)
    started = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(settings.events_topic, value=value)
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                producer.poll(0.05)
        producer.poll(0)
    undelivered = producer.flush(60)
    if undelivered:
        raise RuntimeError(f"{undelivered} events were not acknowledged by the broker")
    return per_second(len(values), time.perf_counter() - started)


def consume_rate(settings: Settings, count: int) -> float:
    """A plain consumer reading every partition from the start (no group join to wait for)."""
    consumer = Consumer(
        {**client_config(settings), "group.id": "bench-raw", "enable.auto.commit": False, "enable.partition.eof": False}
    )
    try:
        partitions = consumer.list_topics(settings.events_topic, timeout=10).topics[settings.events_topic].partitions
        consumer.assign([TopicPartition(settings.events_topic, p, OFFSET_BEGINNING) for p in partitions])
        received = 0
        started = None
        deadline = time.monotonic() + 120
        while received < count and time.monotonic() < deadline:
            asked = time.perf_counter()
            messages = consumer.consume(num_messages=1000, timeout=1.0)
            if messages and started is None:
                started = asked  # from the fetch that brought the first records: connecting is not the rate
            received += sum(1 for message in messages if message.error() is None)
        if received < count:
            raise RuntimeError(f"consumed {received} of {count} events")
        return per_second(count, time.perf_counter() - started)
    finally:
        consumer.close()


def ingest_thread_rate(settings: Settings, tokenizer: Any, count: int) -> float:
    """Events/s through :class:`EventIngestor` into the hand-off, measured from its first batch."""
    handoff = BatchHandoff(settings.batch_queue_size)
    config = IngestConfig(
        events_topic=settings.events_topic,
        dlq_topic=settings.dlq_topic,
        batch_size=settings.batch_size,
        max_batch_latency_s=settings.max_batch_latency_ms / 1000,
        max_text_chars=MAX_TEXT_CHARS,
    )
    ingestor = EventIngestor(
        KafkaClients(make_consumer(settings, settings.trainer_group_id), make_producer(settings)),
        handoff,
        config,
        TrainerMetrics(),
        trainer=TrainerLink(
            positions=lambda: TrainedPosition({}, from_lineage=False),
            builder=BatchBuilder(PairEncoder(tokenizer, MAX_LENGTH)),
        ),
    )
    seen: list[tuple[float, int]] = []
    done = threading.Event()

    def drain() -> None:
        total = 0
        while total < count and not done.is_set():
            batch = handoff.take(timeout_s=0.2)
            if batch is not None:
                total += len(batch)
                seen.append((time.perf_counter(), total))

    drainer = threading.Thread(target=drain, name="bench-drain", daemon=True)
    drainer.start()
    ingestor.start()
    try:
        wait_until(lambda: (seen and seen[-1][1] >= count) or ingestor.failure, 180, "the ingest thread")
        if ingestor.failure is not None:
            raise RuntimeError("ingest thread failed") from ingestor.failure
    finally:
        done.set()
        ingestor.stop()
        ingestor.join(timeout=30)
        drainer.join(timeout=5)
    (first_at, first_total), (last_at, last_total) = seen[0], seen[-1]
    return per_second(last_total - first_total, last_at - first_at)


def broker_rates(
    work_dir: Path, base_model: str, tokenizer: Any, values: list[bytes], repeats: int
) -> dict[str, float]:
    produce, consume, ingest = [], [], []
    with embedded_broker(work_dir) as bootstrap:
        for _ in range(repeats):
            settings = benchmark_settings(bootstrap, work_dir, base_model)
            ensure_topics(
                settings, [(settings.events_topic, settings.events_topic_partitions), (settings.dlq_topic, 1)]
            )
            produce.append(produce_all(settings, values))
            consume.append(consume_rate(settings, len(values)))
            ingest.append(ingest_thread_rate(settings, tokenizer, len(values)))
    return {"produce": median(produce), "consume_raw": median(consume), "ingest_thread": median(ingest)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--events", type=int, default=None, help="events per run (default 20000; --quick 400)")
    args = parser.parse_args(argv)
    count = args.events or (400 if args.quick else 20_000)
    repeats = args.repeats or (1 if args.quick else 3)
    started_machine = machine()
    with work_directory(NAME) as work_dir:
        base_model = base_model_for(args, work_dir)
        tokenizer = load_tokenizer(base_model)
        now_ms = int(time.time() * 1000)
        values = [encoded(event, now_ms + index) for index, event in enumerate(synthetic_events(count))]
        one_core = one_core_rates(tokenizer, values, repeats)
        broker = broker_rates(work_dir, base_model, tokenizer, values, repeats)

    headline = one_core["decode_validate_tokenize_pair_encoder_batch_32"].cpu
    goal_met = headline >= GOAL_EVENTS_PER_S
    rows = [("decode + validate", round(one_core["decode_validate"].cpu), round(one_core["decode_validate"].wall))]
    for name, label in (
        ("pair_encoder", "PairEncoder (ingest, memoised)"),
        ("pair_encoder_rust", "PairEncoder, Rust core only"),
        ("hf_call", "tokenizer() call"),
    ):
        for batch in TOKENIZE_BATCHES:
            for stage in ("tokenize", "decode_validate_tokenize"):
                figure = one_core[f"{stage}_{name}_batch_{batch}"]
                title = "tokenize" if stage == "tokenize" else "decode + validate + tokenize"
                rows.append((f"{title}, {label}, batches of {batch}", round(figure.cpu), round(figure.wall)))
    table = "One core (process pinned to one CPU), events/s\n" + format_table(
        ("stage", "per CPU-second", "wall clock"), rows
    )
    table += "\n\nBroker (embedded, loopback), events/s\n" + format_table(
        ("stage", "events/s"),
        [
            ("produce (one idempotent producer, acks=all)", round(broker["produce"])),
            ("consume, raw (plain consumer, all partitions)", round(broker["consume_raw"])),
            ("ingest thread (consume → decode → batch → tokenize → hand-off)", round(broker["ingest_thread"])),
        ],
    )
    table += (
        f"\n\ndecode + validate + tokenize on one core, batches of 32 as the trainer cuts them: "
        f"{headline:,.0f} events per CPU-second (goal ≥ {GOAL_EVENTS_PER_S:,}: {'met' if goal_met else 'NOT met'})"
    )
    payload = {
        "settings": {"events": count, "repeats": repeats, "max_length": MAX_LENGTH, "base_model": base_model},
        "one_core_events_per_s": {key: asdict(value) for key, value in one_core.items()},
        "broker_events_per_s": broker,
        "headline_events_per_cpu_s": headline,
        "goal_events_per_s": GOAL_EVENTS_PER_S,
        "goal_met": goal_met,
    }
    write_result(args.out, NAME, started_machine, payload, table)
    return payload


if __name__ == "__main__":
    main()
