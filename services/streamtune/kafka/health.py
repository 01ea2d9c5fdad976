"""Watch the Kafka cluster: is it up, are our topics there, were they recreated?

A broker outage must not stop a service or need a restart: librdkafka reconnects by itself, so
what is left is to *notice* — export ``streamtune_kafka_up`` — and to repair what the outage may
have destroyed. A cluster that lost its storage (the memory-only embedded broker after a
restart, or an operator deleting a topic) comes back without our topics: the watch creates them
again, and reports every topic whose identity changed (Kafka topic ids, KIP-516), so that a
consumer can drop offsets that belonged to the old topic instead of skipping the new one's
first records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from prometheus_client import Gauge

from streamtune.kafka.clients import create_missing_topics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchTiming:
    """How often the cluster is probed, and how long one probe may wait for an answer."""

    interval_s: float = 2.0
    timeout_s: float = 2.0


class ClusterWatch(threading.Thread):
    """Probes the cluster every ``interval_s`` from its own thread.

    ``topics`` maps each topic the service needs to the partitions it is created with;
    ``on_recreated(topic)`` is called (from this thread) when a topic seen before reappears
    with another identity, or had to be created again.
    """

    def __init__(
        self,
        admin: AdminClient,
        topics: dict[str, int],
        up: Gauge,
        on_recreated: Callable[[str], None] | None = None,
        timing: WatchTiming | None = None,
    ) -> None:
        super().__init__(name="streamtune-kafka-watch", daemon=True)
        self._admin = admin
        self._topics = dict(topics)
        self._up = up
        self._on_recreated = on_recreated
        timing = timing or WatchTiming()
        self._interval_s = timing.interval_s
        self._timeout_s = timing.timeout_s
        self._stop_requested = threading.Event()
        self._topic_ids: dict[str, str] = {}
        self._seen: set[str] = set()  # topics that existed at some probe
        self._ids_supported = True
        self._down_since: float | None = None
        self.reachable: bool | None = None

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            self.check()
            self._stop_requested.wait(self._interval_s)

    def check(self) -> bool:
        """One probe; returns whether the cluster answered. Never raises."""
        try:
            existing = set(self._admin.list_topics(timeout=self._timeout_s).topics)
        except KafkaException as error:
            self._went_down(error)
            return False
        try:
            self._repair(existing)
        except KafkaException as error:  # e.g. not allowed to create topics: report, keep going
            logger.warning("could not check or recreate topics: %s", error)
        except Exception:
            logger.exception("kafka watch: unexpected error while checking topics")
        self._came_up()
        return True

    def _repair(self, existing: set[str]) -> None:
        missing = {name: parts for name, parts in self._topics.items() if name not in existing}
        recreated: set[str] = set()
        if missing:
            lost = sorted(name for name in missing if name in self._seen)
            if lost:
                logger.warning("topics %s disappeared from the cluster (storage lost?): creating them again", lost)
            create_missing_topics(self._admin, missing, self._timeout_s)
            recreated.update(lost)  # noticed even where the cluster reports no topic ids
        self._seen.update(self._topics)
        for name, topic_id in self._current_ids().items():
            previous = self._topic_ids.get(name)
            self._topic_ids[name] = topic_id
            if previous is not None and previous != topic_id:
                logger.warning(
                    "topic %s was recreated (id %s, was %s): offsets of the old topic no longer apply",
                    name,
                    topic_id,
                    previous,
                )
                recreated.add(name)
        for name in sorted(recreated):  # once per recreation, however it was noticed
            if self._on_recreated is not None:
                self._on_recreated(name)

    def _current_ids(self) -> dict[str, str]:
        if not self._ids_supported:
            return {}
        futures = self._admin.describe_topics(TopicCollection(list(self._topics)), request_timeout=self._timeout_s)
        ids = {}
        for name, future in futures.items():
            try:
                ids[name] = str(future.result(timeout=self._timeout_s).topic_id)
            except KafkaException as error:
                if "UNSUPPORTED" in str(error).upper():
                    logger.info("the cluster does not report topic ids: recreated topics are noticed by offsets only")
                    self._ids_supported = False
                    return {}
                raise
        return ids

    def _went_down(self, error: KafkaException) -> None:
        self._up.set(0)
        if self.reachable is not False:
            self._down_since = time.monotonic()
            logger.warning("Kafka is unreachable (%s); retrying every %.0f s", error, self._interval_s)
        self.reachable = False

    def _came_up(self) -> None:
        self._up.set(1)
        if self.reachable is False and self._down_since is not None:
            logger.warning("Kafka is reachable again after %.1f s", time.monotonic() - self._down_since)
        self.reachable = True
