"""Every partition advances in proportion to its backlog while the training step is the bottleneck.

A real broker, a real :class:`EventIngestor` and a training thread that takes a fixed time per
batch (the trainer's rate) and moves the trained position exactly as the trainer does. The
backlog on three partitions is about ten times what the step trains in the test's window, so the
hand-off is full nearly all the time and the consumer pauses and resumes again and again — the
situation of the soak where partitions 1 and 2 stood still for 20 minutes while 0 drained.

Cause found (traced record by record): the ingest thread paused every partition when the
hand-off refused a batch. A pause makes librdkafka drop the records it had prefetched, and a
resume fetches again; the records then arrive one partition at a time, and the first partition
to arrive refilled the whole hand-off (about four batches) before the others were read. Which
partition comes first depends on fetch order, not backlog (in the soak it was partition 0 every
time). With per-partition queues and round-robin batches (:mod:`streamtune.ingest.fair_batcher`)
the test measures each partition's share of the trained advance. Cost: about 25 s.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from confluent_kafka import Producer
from transformers import AutoTokenizer

from streamtune.ingest.consumer import EventIngestor
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.ingestor_parts import IngestConfig, KafkaClients, TrainerLink
from streamtune.ingest.positions import TrainedPosition
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.kafka.clients import ensure_topics, make_consumer, make_producer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.encoding import PairEncoder
from streamtune.testing.network import wait_for

pytestmark = pytest.mark.slow

PARTITIONS = 3
BATCH_SIZE = 16
STEP_SECONDS = 0.1  # the trainer's rate: 160 events/s
BACKLOG_PER_PARTITION = 600  # 1,800 events: over 10 s of training
TRAINED_TARGET = 720  # what the test trains: 40 % of the backlog


class SlowTrainer(threading.Thread):
    """Claims batches at a fixed rate and moves the trained position, as the trainer does."""

    def __init__(self, handoff: BatchHandoff) -> None:
        super().__init__(daemon=True)
        self.handoff = handoff
        self.position: dict[str, int] = {}
        self.trained = 0
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.halt.is_set():
            batch = self.handoff.take(timeout_s=0.05)
            if batch is None:
                continue
            with self.handoff.claim(batch) as current:
                if not current:
                    continue
                time.sleep(STEP_SECONDS)
                with self.lock:
                    self.position.update(batch.offsets)
                    self.trained += len(batch)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.position)


def _produce_backlog(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for index in range(BACKLOG_PER_PARTITION):
        for partition in range(PARTITIONS):
            event_id = f"p{partition}-{index}"
            value = json.dumps({"event_id": event_id, "text": f"film {index}", "label": index % 2})
            producer.produce(topic, value=value.encode(), partition=partition)
    assert producer.flush(30) == 0


def test_every_partition_advances_by_its_share_under_backpressure(settings, tiny_model_dir):
    ensure_topics(settings, [(settings.events_topic, PARTITIONS), (settings.dlq_topic, 1)])
    _produce_backlog(settings.bootstrap_servers, settings.events_topic)
    handoff = BatchHandoff(2)
    trainer = SlowTrainer(handoff)
    ingestor = EventIngestor(
        KafkaClients(make_consumer(settings, settings.trainer_group_id), make_producer(settings)),
        handoff,
        IngestConfig(settings.events_topic, settings.dlq_topic, BATCH_SIZE, max_batch_latency_s=1.0, max_text_chars=99),
        TrainerMetrics(),
        trainer=TrainerLink(
            positions=lambda: TrainedPosition(trainer.snapshot(), from_lineage=True),
            builder=BatchBuilder(PairEncoder(AutoTokenizer.from_pretrained(tiny_model_dir), 32)),
        ),
    )
    trainer.start()
    ingestor.start()
    try:
        wait_for(lambda: trainer.trained >= TRAINED_TARGET, 120, what="the trainer to work through its target")
    finally:
        ingestor.stop()
        ingestor.join(30)
        trainer.halt.set()
        trainer.join(30)
    assert ingestor.failure is None
    advanced = {p: trainer.snapshot().get(f"{settings.events_topic}:{p}", 0) for p in range(PARTITIONS)}
    total = sum(advanced.values())
    assert total < PARTITIONS * BACKLOG_PER_PARTITION / 2, "the backlog ran dry: the test proved nothing"
    shares = {p: advanced[p] / total for p in range(PARTITIONS)}
    expected = 1 / PARTITIONS  # equal backlogs
    unfair = {p: round(share, 3) for p, share in shares.items() if abs(share - expected) > 0.1 * expected}
    assert not unfair, f"partitions off their share {expected:.3f} by over 10 %: {unfair} (advanced {advanced})"
