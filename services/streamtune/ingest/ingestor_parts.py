"""What the ingest thread (:class:`~streamtune.ingest.consumer.EventIngestor`) is built from:
its settings, its Kafka clients, and its link to the trainer."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, Producer

from streamtune.config import Settings
from streamtune.ingest.partition_ends import ProbeFactory
from streamtune.ingest.positions import PositionSource
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.kafka.clients import RenewableProducer


@dataclass(frozen=True)
class IngestConfig:
    """The ingest thread's settings: topics, and when a micro-batch closes.

    ``partitions``: the events topic's partitions to read, assigned by hand (a rank of a
    data-parallel group, :mod:`streamtune.distributed`); None: the consumer group assigns them.
    """

    events_topic: str
    dlq_topic: str
    batch_size: int
    max_batch_latency_s: float
    max_text_chars: int
    partitions: tuple[int, ...] | None = None
    fair_wait: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, partitions: tuple[int, ...] | None = None) -> IngestConfig:
        return cls(
            events_topic=settings.events_topic,
            dlq_topic=settings.dlq_topic,
            batch_size=settings.batch_size,
            max_batch_latency_s=settings.max_batch_latency_ms / 1000,
            max_text_chars=settings.max_text_chars,
            partitions=partitions,
            fair_wait=settings.fair_batch_wait,
        )


@dataclass(frozen=True)
class KafkaClients:
    """The ingest thread's clients: its consumer, the producer of dead letters, and a factory
    of throwaway consumers probing partition ends (None: no probing)."""

    consumer: Consumer
    producer: Producer | RenewableProducer
    probe: ProbeFactory | None = None


@dataclass(frozen=True)
class TrainerLink:
    """What the ingest thread needs from the trainer: where training stands (it seeks there on
    every assignment), and how the trainer's model family wants its batches built."""

    positions: PositionSource
    builder: BatchBuilder
