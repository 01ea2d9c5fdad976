"""The cluster watch notices an outage and repairs what a broker that lost its storage lost."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from streamtune.broker import EmbeddedBroker
from streamtune.kafka.health import ClusterWatch, WatchTiming
from streamtune.metrics import TrainerMetrics
from streamtune.testing.network import free_port

pytestmark = pytest.mark.slow


def test_watch_reports_the_outage_and_recreates_lost_topics(tmp_path):
    port = free_port()
    metrics = TrainerMetrics()
    recreated: list[str] = []
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        watch = ClusterWatch(
            admin, {"events": 2, "events.dlq": 1}, metrics.kafka_up, recreated.append, WatchTiming(timeout_s=1.0)
        )
        up = lambda: metrics.registry.get_sample_value("streamtune_kafka_up")  # noqa: E731

        assert watch.check() is True and up() == 1
        assert {"events", "events.dlq"} <= set(admin.list_topics(timeout=5).topics)
        assert recreated == []  # created for the first time: nothing was lost

        broker.stop()
        assert watch.check() is False and up() == 0
        assert watch.check() is False and up() == 0

        broker = EmbeddedBroker(port, log_path=tmp_path / "broker-2.log").start()  # empty: memory only
        assert watch.check() is True and up() == 1
        topics = admin.list_topics(timeout=5).topics
        assert {"events", "events.dlq"} <= set(topics)
        assert len(topics["events"].partitions) == 2
        assert sorted(recreated) == ["events", "events.dlq"]

        assert watch.check() is True
        assert sorted(recreated) == ["events", "events.dlq"]  # reported once, not on every probe
    finally:
        broker.stop()
