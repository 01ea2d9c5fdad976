"""The ingest side's face to the trainer: its topics, its producer, the cluster watch, the
ingest thread.

Kafka outages. A cluster watch (:class:`streamtune.kafka.health.ClusterWatch`) probes the
cluster every few seconds and exports ``streamtune_kafka_up``; librdkafka reconnects by itself.
When the cluster comes back with new topics under our topics' names (a broker that lost its
storage, or topics deleted and created again), what it knew of us is void:
:meth:`EventStream.follow_recreated_topics` renews the producer (the cluster no longer knows its
producer id and would refuse its sends forever), moves the trained position of a recreated
events topic to the new topic's beginning, and rewinds the ingest thread to the trained
position. The rewind happens in place: a consumer closed and replaced at that moment could stay
behind in the broker's new group and keep its replacement from ever being assigned.
"""

from __future__ import annotations

import logging
import queue

from confluent_kafka import KafkaError

from streamtune.config import Settings
from streamtune.ingest.consumer import EventIngestor
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.ingestor_parts import IngestConfig, KafkaClients, TrainerLink
from streamtune.ingest.positions import PositionSource
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.kafka.clients import RenewableProducer, ensure_topics, make_admin, make_consumer, make_producer
from streamtune.kafka.health import ClusterWatch
from streamtune.metrics import TrainerMetrics

logger = logging.getLogger(__name__)

# After the cluster lost its state, the old producer gets this long to deliver what it still can.
_PRODUCER_GRACE_S = 2.0
_CONNECTION_ERRORS = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})


class EventStream:
    """Creates the topics, then owns the producer, the cluster watch and the ingest thread.

    ``positions`` is the trained position the ingest thread seeks to (see
    :class:`~streamtune.ingest.consumer.EventIngestor`).
    """

    def __init__(
        self, settings: Settings, metrics: TrainerMetrics, *, builder: BatchBuilder, positions: PositionSource
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._trainer = TrainerLink(positions, builder)
        self._recreated_topics: queue.Queue[str] = queue.Queue()
        self.handoff = BatchHandoff(settings.batch_queue_size)
        self.ingestor: EventIngestor | None = None
        # The events topic's partitions to read by hand (a rank of a data-parallel group); None:
        # the consumer group assigns them.
        self.partitions: tuple[int, ...] | None = None
        topics = {
            settings.events_topic: settings.events_topic_partitions,
            settings.dlq_topic: 1,
            settings.models_topic: 1,
        }
        ensure_topics(settings, topics.items())
        # No linger: a version's announcement is the servers' cue to swap, and waiting the default
        # 5 ms for company put most of 10 ms between publish and notice (dead letters are few).
        self.producer = RenewableProducer(
            lambda: make_producer(settings, error_cb=self._on_kafka_error, **{"linger.ms": 0})
        )
        self.watch = ClusterWatch(make_admin(settings), topics, metrics.kafka_up, self._recreated_topics.put)
        self.watch.check()  # remembers the topics' identities, so a recreation is noticed
        metrics.kafka_up.set(1)

    # --- the ingest thread -----------------------------------------------------------------
    def start_ingest(self) -> None:
        settings = self._settings
        self.handoff = BatchHandoff(settings.batch_queue_size)
        clients = KafkaClients(
            consumer=make_consumer(settings, settings.trainer_group_id, error_cb=self._on_kafka_error),
            producer=self.producer,
            probe=lambda: make_consumer(settings, f"{settings.trainer_group_id}.probe"),
        )
        config = IngestConfig.from_settings(settings, self.partitions)
        self.ingestor = EventIngestor(clients, self.handoff, config, self._metrics, trainer=self._trainer)
        self.ingestor.start()

    def stop_ingest(self) -> None:
        if self.ingestor is not None:
            self.ingestor.stop()
            self.ingestor.join(timeout=30)
            self.ingestor = None

    def check_ingest(self) -> None:
        """Raise if the ingest thread failed."""
        if self.ingestor is not None and self.ingestor.failure is not None:
            raise RuntimeError("ingest thread failed") from self.ingestor.failure

    def request_commit(self, offsets: dict[str, int]) -> None:
        """Commit ``offsets`` to the group (they are durable in a version)."""
        if self.ingestor is not None:
            self.ingestor.request_commit(offsets)

    # --- running ---------------------------------------------------------------------------
    def start(self) -> None:
        self.start_ingest()
        self.watch.start()

    def close(self) -> None:
        self.watch.stop()
        self.stop_ingest()
        self.producer.flush(5)

    def follow_recreated_topics(self, position: dict[str, int]) -> None:
        """Some of our topics came back as new topics: the cluster lost its state or they were
        deleted. The producer's id is void with it, and so are the events topic's offsets in
        ``position`` (the trained position, moved here to the new topic's beginning)."""
        recreated = set()
        while True:
            try:
                recreated.add(self._recreated_topics.get_nowait())
            except queue.Empty:
                break
        if not recreated:
            return
        dropped = self.producer.renew(grace_s=_PRODUCER_GRACE_S)
        if dropped:
            logger.warning("%d dead letters or announcements could not be sent any more and were dropped", dropped)
        topic = self._settings.events_topic
        if topic in recreated:
            stale = {key: offset for key, offset in position.items() if key.rpartition(":")[0] == topic}
            logger.warning(
                "the events topic %s was recreated (the cluster lost it or it was deleted): offsets %s belong to "
                "the old topic; reading the new topic from its beginning",
                topic,
                stale,
            )
            position.update(dict.fromkeys(stale, 0))
        # Everything after the trained position is read again, so a dead letter the old producer
        # dropped is sent again.
        if self.ingestor is not None and not self.ingestor.rewind():
            logger.warning("the ingest thread has not rewound yet; it does before its next poll")

    def _on_kafka_error(self, error: object) -> None:
        code = getattr(error, "code", lambda: None)()
        if code == KafkaError._ALL_BROKERS_DOWN:
            self._metrics.kafka_up.set(0)
        # Every failed reconnect is reported, many a second; the cluster watch logs outages once.
        logger.log(logging.DEBUG if code in _CONNECTION_ERRORS else logging.WARNING, "kafka: %s", error)
