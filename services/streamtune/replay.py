"""Replay a JSONL file of events onto the events topic at a chosen rate."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from streamtune.config import Settings
from streamtune.kafka.clients import ensure_topics, make_producer
from streamtune.progress import Progress, ProgressOutput

logger = logging.getLogger(__name__)


@dataclass
class ReplaySummary:
    produced: int = 0
    failed: int = 0
    skipped_blank: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = self.produced / self.seconds if self.seconds else 0.0
        return (
            f"produced {self.produced} events ({self.failed} failed, {self.skipped_blank} blank lines "
            f"skipped) in {self.seconds:.1f} s, {rate:.0f} events/s"
        )


@dataclass(frozen=True)
class ReplayPace:
    """How a file is replayed: ``rate`` events/s (None: as fast as possible), at most ``limit``
    events, keyed by the JSON field ``key_field``, with a progress bar or not."""

    rate: float | None = None
    limit: int | None = None
    key_field: str | None = "user_id"
    progress: bool = True


def replay(settings: Settings, path: Path, pace: ReplayPace | None = None) -> ReplaySummary:
    """Produce each line of ``path`` as one message, keyed by ``pace.key_field`` when present so
    a user's events stay in order on one partition. Lines are sent as they are: invalid ones are
    the trainer's to dead-letter, exactly as with any other producer."""
    pace = pace or ReplayPace()
    rate, limit, key_field = pace.rate, pace.limit, pace.key_field
    ensure_topics(settings, [(settings.events_topic, settings.events_topic_partitions)])
    summary = ReplaySummary()

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            summary.failed += 1
            logger.warning("delivery failed: %s", error)

    producer = make_producer(settings)
    started = time.perf_counter()
    total = _count_lines(path) if limit is None else min(limit, _count_lines(path))
    output = ProgressOutput(every_s=10.0, enabled=pace.progress)
    with open(path, "rb") as lines, Progress("replay", total, "events", output) as bar:
        for index, line in enumerate(lines):
            if limit is not None and summary.produced >= limit:
                break
            value = line.rstrip(b"\r\n")
            if not value.strip():
                summary.skipped_blank += 1
                continue
            if rate:
                # Pace against the start time, not per message, so sleeping never accumulates drift.
                delay = started + summary.produced / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            _produce(producer, settings.events_topic, value, _key(value, key_field), delivered)
            summary.produced += 1
            bar.update(1)
            if index % 1000 == 0:
                producer.poll(0)
    producer.flush(30)
    summary.seconds = time.perf_counter() - started
    return summary


def _count_lines(path: Path) -> int:
    with open(path, "rb") as lines:
        return sum(1 for _ in lines)


def _produce(producer, topic: str, value: bytes, key: bytes | None, callback) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=callback)
            return
        except BufferError:  # local queue full: let deliveries drain, then retry
            producer.poll(0.1)


def _key(value: bytes, field: str | None) -> bytes | None:
    if not field:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    key = document.get(field) if isinstance(document, dict) else None
    return str(key).encode() if key is not None else None
