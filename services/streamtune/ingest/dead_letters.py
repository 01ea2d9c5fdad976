"""Dead letters: an invalid event goes, byte for byte, to ``<events topic>.dlq`` with its reason
in headers, and is counted by reason."""

from __future__ import annotations

import logging

from confluent_kafka import Message, Producer

from streamtune.events import InvalidEvent
from streamtune.kafka.clients import RenewableProducer
from streamtune.metrics import TrainerMetrics

logger = logging.getLogger(__name__)

ERROR_HEADER = "streamtune-error"
ERROR_DETAIL_HEADER = "streamtune-error-detail"
SOURCE_HEADER = "streamtune-source"


class DeadLetters:
    """Produces dead letters to ``topic``; the producer is flushed before a version is published,
    so no offset is committed past a dead letter Kafka has not acknowledged."""

    def __init__(self, producer: Producer | RenewableProducer, topic: str, metrics: TrainerMetrics) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics

    def send(self, message: Message, invalid: InvalidEvent) -> None:
        self._metrics.events_invalid.labels(reason=invalid.reason).inc()
        source = f"{message.topic()}:{message.partition()}:{message.offset()}"
        logger.info("dead-lettered %s: %s", source, invalid.detail)
        self._producer.produce(
            self._topic,
            value=message.value(),
            key=message.key(),
            headers=[
                (ERROR_HEADER, invalid.reason.encode()),
                (ERROR_DETAIL_HEADER, invalid.detail.encode("utf-8", "replace")),
                (SOURCE_HEADER, source.encode()),
            ],
        )

    def serve_callbacks(self) -> None:
        """Deliver the producer's delivery reports (it has no thread of its own for them)."""
        self._producer.poll(0)
