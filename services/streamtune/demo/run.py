"""Run the demo against a running stack: score each chunk of the stream with the served version
(so every event is scored before it is trained on: prequential), send it, wait for the trainer
to publish, and print the AUC as it goes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from streamtune.checkpoints.manifest import parse_offset_key
from streamtune.client import Client, StreamtuneClientError
from streamtune.config import Settings
from streamtune.errors import StreamtuneError
from streamtune.evaluation.scoring import roc_auc


class DemoError(StreamtuneError):
    """The demo cannot run (no server, no broker)."""


@dataclass(frozen=True)
class ChunkResult:
    first: int
    last: int
    version: int
    auc: float | None
    drifted: bool


@dataclass(frozen=True)
class DemoPlan:
    """The stream, where its drift starts, events per step, and the longest wait per step."""

    events: Sequence[dict[str, Any]]
    drift_at: int
    chunk: int = 200
    wait_s: float = 90.0


def run_demo(settings: Settings, plan: DemoPlan, client: Client, out: TextIO = sys.stdout) -> list[ChunkResult]:
    """Score, send and wait, chunk by chunk; prints a line per chunk and returns the results."""
    events, drift_at, chunk = plan.events, plan.drift_at, plan.chunk
    from streamtune.kafka.clients import ensure_topics, make_producer

    baseline = _events_consumed(client, settings.events_topic)
    ensure_topics(settings, [(settings.events_topic, settings.events_topic_partitions)])
    producer = make_producer(settings)
    results: list[ChunkResult] = []
    print(f"{'events':>11}  {'served':>6}  prequential AUC", file=out)
    for first in range(0, len(events), chunk):
        batch = events[first : first + chunk]
        if first <= drift_at < first + len(batch) and first:
            print(f"{'':>11}  --- drift: new genres arrive, tastes shift ---", file=out)
        scored = client.predict([{"text": event["text"]} for event in batch])
        auc = roc_auc([event["label"] for event in batch], scored.scores)
        result = ChunkResult(first, first + len(batch) - 1, scored.model_version, auc, first >= drift_at)
        results.append(result)
        print(_line(result), file=out, flush=True)
        _send(producer, settings.events_topic, batch)
        if first + chunk < len(events):  # nothing is scored after the last step: no need to wait
            target = baseline + 0.9 * (first + len(batch))
            _wait_for_training(client, settings.events_topic, target, plan.wait_s)
    return results


def _line(result: ChunkResult) -> str:
    auc = "  n/a" if result.auc is None else f"{result.auc:.2f}"
    bar = "" if result.auc is None else "#" * round(max(0.0, result.auc - 0.4) * 50)
    return f"{result.first:>5}-{result.last:<5}  v{result.version:<5}  {auc}  {bar}"


def _send(producer: Any, topic: str, batch: Sequence[dict[str, Any]]) -> None:
    now_ms = int(time.time() * 1000)  # stamped as it happens, so the page's freshness is real
    for event in batch:
        value = json.dumps({**event, "ts": now_ms})
        producer.produce(topic, value=value.encode(), key=event["user_id"].encode())
    if producer.flush(30) != 0:
        raise DemoError(f"the broker did not acknowledge the demo's events on {topic} within 30 s")


def _events_consumed(client: Client, topic: str) -> int:
    """Events of ``topic`` the served version's offsets are past: trained, held out for the gate,
    or discarded by a gate refusal. (Counting trained examples instead, the demo waited out its
    whole timeout at every later step once the gate had discarded a few.)"""
    try:
        offsets = client.model().manifest.get("kafka_offsets") or {}
    except StreamtuneClientError as error:
        raise DemoError(
            f"no inference server answers at {client.base_url} ({error}); start the stack first: make up"
        ) from None
    return sum(int(offset) for key, offset in offsets.items() if parse_offset_key(key)[0] == topic)


def _wait_for_training(
    client: Client, topic: str, target: float, wait_s: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Until the served version's offsets are past ``target`` events of ``topic`` (or ``wait_s``
    passed: the gate may hold a version back, or the trainer may be slower than the stream)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _events_consumed(client, topic) >= target:
            return
        sleep(0.5)


def summary(results: Sequence[ChunkResult]) -> str:
    """Where the AUC started, peaked before the drift, fell to, and ended."""
    before = [r.auc for r in results if not r.drifted and r.auc is not None]
    after = [r.auc for r in results if r.drifted and r.auc is not None]
    if not before or not after:
        return "too few chunks for a summary"
    return (
        f"prequential AUC: {before[0]:.2f} at the start (untrained), {max(before):.2f} before the drift, "
        f"{after[0]:.2f} right after it, {after[-1]:.2f} at the end"
    )
