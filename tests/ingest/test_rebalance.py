"""Rebalances between two ingest members never lose or repeat an example.

Two :class:`EventIngestor` members (each with its own consumer, hand-off and training thread)
share one consumer group on a real broker with two partitions; the second joins mid-stream and
later leaves, so partitions move both ways while batches are queued and a step is running. The
training threads record every claimed example and move a shared trained position, exactly as
the trainer does under the hand-off's step lock.

What this proves: the ingest side of exactly-once — queued batches of a revoked partition are
dropped (never trained after the revoke), a step in progress finishes before the partition is
handed over, and the new owner seeks to the trained position — so the union of what the members
trained is every event exactly once. It does not run two trainers on one store: the trainer is
a single writer (publishing checks LATEST under the store's lock). Cost: about 20 s.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter

import pytest
from transformers import AutoTokenizer

from streamtune.ingest.consumer import EventIngestor
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.ingestor_parts import IngestConfig, KafkaClients, TrainerLink
from streamtune.ingest.positions import TrainedPosition
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.kafka.clients import ensure_topics, make_consumer, make_producer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.encoding import PairEncoder
from streamtune.testing.crash_harness import produce_records
from streamtune.testing.network import wait_for

pytestmark = pytest.mark.slow

# A training step's duration: long enough that batches queue up behind it (after a pause for a
# full hand-off the consumer takes ~0.5 s to deliver again, so shorter steps drain the queue).
STEP_SECONDS = 0.25


class Member:
    """One group member: ingest thread, hand-off and a training thread that records claims."""

    def __init__(self, name, settings, tokenizer, shared):
        self.name = name
        self.claimed: list[str] = []
        self._shared = shared
        self.handoff = BatchHandoff(2)
        self.ingestor = EventIngestor(
            KafkaClients(make_consumer(settings, settings.trainer_group_id), make_producer(settings)),
            self.handoff,
            IngestConfig(settings.events_topic, settings.dlq_topic, 16, max_batch_latency_s=0.1, max_text_chars=1000),
            TrainerMetrics(),
            trainer=TrainerLink(
                positions=lambda: TrainedPosition(dict(shared["position"]), from_lineage=True),
                builder=BatchBuilder(PairEncoder(tokenizer, 32)),
            ),
        )
        self._stop = threading.Event()
        self._trainer = threading.Thread(target=self._train, name=f"train-{name}")

    def start(self):
        self.ingestor.start()
        self._trainer.start()

    def _train(self):
        while not self._stop.is_set():
            batch = self.handoff.take(timeout_s=0.05)
            if batch is None:
                continue
            with self.handoff.claim(batch) as current:
                if not current:
                    continue
                time.sleep(STEP_SECONDS)
                with self._shared["lock"]:
                    self.claimed.extend(batch.event_ids)
                    self._shared["position"].update(batch.offsets)

    def stop(self):
        self.ingestor.stop()
        self.ingestor.join(30)
        self._stop.set()
        self._trainer.join(30)
        assert self.ingestor.failure is None


def events(start, count):
    return [
        (f"r-{i}".encode(), f'{{"event_id": "r-{i}", "text": "film {i}", "label": {i % 2}}}'.encode())
        for i in range(start, start + count)
    ]


def test_partitions_move_both_ways_without_losing_or_repeating(settings, tiny_model_dir, caplog):
    caplog.set_level(logging.INFO, logger="streamtune.ingest.consumer")
    ensure_topics(settings, [(settings.events_topic, 2), (settings.dlq_topic, 1)])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    shared = {"position": {}, "lock": threading.Lock()}
    first, second = Member("a", settings, tokenizer, shared), Member("b", settings, tokenizer, shared)
    produce_records(settings.bootstrap_servers, settings.events_topic, events(0, 600))

    first.start()
    try:
        wait_for(lambda: len(first.claimed) >= 40, 60, what="first member training")
        second.start()  # joins mid-stream: a rebalance while the first member has work queued
        try:
            wait_for(lambda: len(second.claimed) >= 24, 60, what="second member training")
        finally:
            second.stop()  # leaves: its partition goes back, again mid-stream
        produce_records(settings.bootstrap_servers, settings.events_topic, events(600, 100))
        wait_for(lambda: len(first.claimed) + len(second.claimed) >= 700, 120, interval_s=0.2, what="all claimed")
    finally:
        first.stop()

    claimed = Counter(first.claimed + second.claimed)
    assert {event_id for event_id, count in claimed.items() if count > 1} == set()
    assert set(claimed) == {f"r-{i}" for i in range(700)}
    assert first.handoff.generation >= 2 and second.handoff.generation >= 1  # revoked both ways
    dropped = [
        int(match.group(1)) + int(match.group(2))
        for match in re.finditer(r"dropped (\d+) queued batches and (\d+) open examples", caplog.text)
    ]
    assert sum(dropped) > 0, "no revoke struck with work queued: the test proved nothing"
