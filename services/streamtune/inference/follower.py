"""Follow new versions: announcements on the models topic wake the follower early, and the
store's LATEST pointer is re-read every few seconds anyway, so a lost announcement or a Kafka
outage only delays a swap. LATEST is the authority (a rollback moves it backwards)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics

logger = logging.getLogger(__name__)

_POLL_SLICE_S = 0.25


@dataclass(frozen=True)
class Announcements:
    """Where new versions are announced: a consumer (None: none, the store is only re-read) and
    the models topic it is assigned."""

    consumer: Consumer | None
    models_topic: str


class VersionFollower(threading.Thread):
    """Keeps the slot on the version the store designates; ``poll_seconds`` between re-reads."""

    def __init__(
        self,
        store: CheckpointStore,
        slot: ModelSlot,
        announcements: Announcements,
        poll_seconds: float,
        metrics: ServingMetrics,
    ) -> None:
        super().__init__(name="streamtune-follower", daemon=True)
        self._store = store
        self._slot = slot
        self._consumer = announcements.consumer
        self._topic = announcements.models_topic
        self._poll_seconds = poll_seconds
        self._metrics = metrics
        self._stop_requested = threading.Event()
        self._assigned = False
        # Set by an operator through the admin API; per replica, lost on restart.
        self.pinned: int | None = None
        self.rounds = 0  # times the target version was checked (observable progress)

    def stop(self) -> None:
        self._stop_requested.set()

    def target_version(self) -> int:
        """The pinned version if any, else what LATEST names, else 0 (the base model)."""
        if self.pinned is not None:
            return self.pinned
        latest = self._store.latest_version()
        return 0 if latest is None else latest

    def run(self) -> None:
        try:
            while not self._stop_requested.is_set():
                try:
                    self._slot.ensure(self.target_version())
                except CheckpointError as error:  # the store cannot be read: keep serving, retry
                    logger.warning("cannot read the store's LATEST: %s", error)
                self.rounds += 1
                self._wait_for_announcement()
        finally:
            if self._consumer is not None:
                self._consumer.close()

    def _wait_for_announcement(self) -> None:
        if self._consumer is None or not self._assign():
            self._stop_requested.wait(self._poll_seconds)
            return
        # In short slices, so that stop() is honoured promptly even with a long poll interval.
        deadline = time.monotonic() + self._poll_seconds
        while not self._stop_requested.is_set() and (remaining := deadline - time.monotonic()) > 0:
            message = self._consumer.poll(min(remaining, _POLL_SLICE_S))
            if message is not None and message.error() is None:
                logger.info("announcement of version %s", (message.key() or b"?").decode(errors="replace"))
                return

    def _assign(self) -> bool:
        """Read announcements from now on, without a consumer group (nothing to coordinate)."""
        if self._assigned:
            return True
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=2.0)
            topic = metadata.topics.get(self._topic)
            if topic is None or topic.error is not None or not topic.partitions:
                self._metrics.kafka_up.set(1)
                return False
            self._consumer.assign([TopicPartition(self._topic, p, OFFSET_END) for p in topic.partitions])
        except KafkaException as error:
            self._metrics.kafka_up.set(0)
            logger.warning("cannot follow announcements yet (polling the store): %s", error)
            return False
        self._metrics.kafka_up.set(1)
        self._assigned = True
        return True
