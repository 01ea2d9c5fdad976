"""Consumer lag: how far each assigned partition's end is ahead of what was read, as a gauge
(``streamtune_consumer_lag``), refreshed every few seconds from the ingest thread."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Gauge

from streamtune.checkpoints.manifest import offset_key

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0


class LagReporter:
    """Reports lag per partition; call :meth:`maybe_report` on every poll, it acts every
    ``interval_s``. Unreachable watermarks are logged, never raised: whether Kafka is up is the
    cluster watch's (:mod:`streamtune.kafka.health`) to report."""

    def __init__(self, consumer: Consumer, gauge: Gauge, interval_s: float = LAG_INTERVAL_S) -> None:
        self._consumer = consumer
        self._gauge = gauge
        self._interval_s = interval_s
        self._next_check = 0.0

    def maybe_report(self, assignment: list[TopicPartition], consumed: dict[str, int]) -> None:
        """``consumed``: the next offset to read per ``"topic:partition"``."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._interval_s
        try:
            for tp in assignment:
                # Listed ends are too low on Tansu (see ingest.partition_ends), fetched ones stale
                # while paused; neither is ever too high.
                _, listed = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
                _, fetched = self._consumer.get_watermark_offsets(tp, cached=True)
                high = max(listed, fetched)
                position = consumed.get(offset_key(tp.topic, tp.partition))
                if position is not None and high >= 0:
                    self._gauge.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, high - position))
        except Exception as error:
            logger.warning("cannot reach Kafka for watermarks: %s", error)
