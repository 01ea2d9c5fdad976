"""Replay a fixed stream into a trainer process while SIGKILLing it, then audit the lineage.

Shared by the crash test and ``benchmarks/crash_replay.py``. The stream mixes valid events
(keyed by event id over the topic's partitions), re-deliveries of earlier events under the same
id (with another key, so some land on the other partition) and invalid records. It is produced
in chunks, one per trainer run, so every run has work in hand when it is killed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import Producer

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.service import TrainerService
from streamtune.trainer.versions.lineage import audit_lineage

Record = tuple[bytes, bytes]


@dataclass
class CrashStream:
    """The records to produce and what the final lineage must have trained."""

    records: list[Record]
    expected: set[str]  # valid, not held out: each must be trained exactly once
    held_out: int  # distinct valid ids in the holdout
    redeliveries: int  # valid records repeating an earlier event id
    invalid: int


def crash_stream(events: int, holdout_share: float, seed: int = 0, redelivery_share: float = 0.1) -> CrashStream:
    rng = random.Random(seed)
    originals = synthetic_events(events, seed=seed, prefix="crash")
    records: list[Record] = []
    redeliveries = invalid = 0
    for index, event in enumerate(originals):
        records.append((event["event_id"].encode(), json.dumps(event).encode()))
        if index % 37 == 11:
            records.append((b"bad", b'{"event_id": "broken", "text": 5, "label": 1}'))
            invalid += 1
        if index > 10 and rng.random() < redelivery_share:
            again = originals[rng.randrange(index)]
            records.append((f"{again['event_id']}-again".encode(), json.dumps(again).encode()))
            redeliveries += 1
    ids = [event["event_id"] for event in originals]
    held_out = {event_id for event_id in ids if is_holdout(event_id, holdout_share)}
    return CrashStream(records, set(ids) - held_out, len(held_out), redeliveries, invalid)


@dataclass
class CrashReport:
    """Measured outcome of one crash replay."""

    kills: int = 0
    records: int = 0
    expected_events: int = 0
    trained_events: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    discarded: int = 0
    held_out: int = 0
    duplicates_skipped: int = 0
    versions_in_lineage: int = 0
    lineage_complete: bool = False
    kill_delays_s: list[float] = field(default_factory=list)
    # Kills that struck with records of the run still unpublished (work in progress lost).
    kills_mid_stream: int = 0
    replay_buffer_bytes: float = 0.0  # as the last trainer reported it
    replay_buffer_examples: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def produce_records(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0, "records were not acknowledged"


@dataclass(frozen=True)
class CrashPlan:
    """How many trainer runs to kill, seeded; each run is killed after a random number (1–4) of
    its own versions plus a random delay of up to ``max_delay_s`` — about one train-and-publish
    cycle of the tiny model, so the kill falls anywhere in it: mid-step, mid-write, between the
    rename and LATEST, before the commit."""

    kills: int
    seed: int = 0
    max_delay_s: float = 0.05


def run_crash_replay(settings: Settings, stream: CrashStream, plan: CrashPlan, log_dir: Path) -> CrashReport:
    """Kill ``plan.kills`` trainer runs at random moments, let a last one finish, audit the lineage."""
    kills, max_delay_s = plan.kills, plan.max_delay_s
    rng = random.Random(plan.seed)
    store = CheckpointStore(settings.checkpoint_dir)
    report = CrashReport(records=len(stream.records), expected_events=len(stream.expected))
    started = time.monotonic()
    chunk = -(-len(stream.records) // (kills + 1))
    for run in range(kills):
        produce_records(
            settings.bootstrap_servers, settings.events_topic, stream.records[run * chunk : (run + 1) * chunk]
        )
        target = (store.latest_version() or 0) + rng.randint(1, 4)
        trainer = ServiceProcess("train", settings, log_dir / f"trainer-{run}.log")
        try:
            # Polled every 5 ms (reading LATEST is cheap): at 100 ms a fast trainer could finish
            # its whole chunk between the target version and the kill, which then strikes idle.
            wait_for(
                lambda: (store.latest_version() or 0) >= target,  # noqa: B023
                120,
                interval_s=0.005,
                what=f"progress of run {run}",
            )
            delay = rng.uniform(0, max_delay_s)
            time.sleep(delay)
        finally:
            trainer.kill()
        report.kills += 1
        report.kill_delays_s.append(round(delay, 3))
        if published_records(store) < min(len(stream.records), (run + 1) * chunk):
            report.kills_mid_stream += 1

    produce_records(settings.bootstrap_servers, settings.events_topic, stream.records[kills * chunk :])
    final = ServiceProcess("train", settings, log_dir / "trainer-final.log")
    try:
        wait_for(lambda: _consumed_everything(store, len(stream.records)), 180, what="a version covering every record")
        metrics = httpx.get(f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics", timeout=5).text
        report.replay_buffer_bytes = _metric(metrics, "streamtune_replay_buffer_bytes")
        report.replay_buffer_examples = _metric(metrics, "streamtune_replay_buffer_examples")
    finally:
        assert final.stop() == 0, final.log()[-3000:]
    report.seconds = round(time.monotonic() - started, 1)

    audit = audit_lineage(store)
    trained = Counter(audit.trained)
    report.trained_events = len(trained)
    report.lost = sorted(stream.expected - set(trained))
    report.duplicated = {event_id: count for event_id, count in trained.items() if count > 1}
    report.unexpected = sorted(set(trained) - stream.expected)
    report.discarded = len(audit.discarded)
    report.held_out = audit.held_out
    report.duplicates_skipped = audit.duplicates
    report.versions_in_lineage = len(audit.versions)
    report.lineage_complete = audit.complete
    return report


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def published_records(store: CheckpointStore) -> int:
    """Records (valid or not) the version LATEST names has consumed, over all partitions."""
    latest = store.latest_version()
    return 0 if latest is None else store.read_manifest(latest).records_through


def _consumed_everything(store: CheckpointStore, records: int) -> bool:
    return published_records(store) == records


def event_records(events: list[dict]) -> list[Record]:
    """Events as (key, value) records keyed by event id."""
    return [(event["event_id"].encode(), json.dumps(event).encode()) for event in events]


def trainer_metric(trainer: TrainerService, name: str) -> float:
    """A sample of an in-process trainer's metrics (0 when not yet exported)."""
    return trainer.metrics.registry.get_sample_value(name) or 0.0


@contextmanager
def trainer_thread(settings: Settings) -> Iterator[TrainerService]:
    """A trainer running in a thread of this process until the block ends."""
    trainer = TrainerService(settings).setup()
    stop = threading.Event()
    worker = threading.Thread(target=trainer.run, args=(stop,))
    worker.start()
    try:
        yield trainer
    finally:
        stop.set()
        worker.join(timeout=60)
