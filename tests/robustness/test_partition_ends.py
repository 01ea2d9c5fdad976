"""A trained offset past its partition's end (a recreated topic) is noticed, and only then.

Runs against the session's Tansu broker, whose ListOffsets answer is too low when the last record
batch holds several records: the check must not take such a partition for a recreated one (that
would re-read, and train twice, the records after the answer).
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer, TopicPartition

from streamtune.ingest.partition_ends import restart_offsets
from streamtune.kafka.clients import ensure_topics, make_consumer

pytestmark = pytest.mark.slow


def test_only_offsets_past_the_end_restart(settings):
    topic = settings.events_topic
    ensure_topics(settings, [(topic, 1)])
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for _ in range(5):  # five one-record batches ...
        producer.produce(topic, b"x", partition=0)
        producer.flush(10)
    for _ in range(20):  # ... then one batch of twenty: the partition ends at offset 25
        producer.produce(topic, b"y", partition=0)
    assert producer.flush(10) == 0

    consumer = make_consumer(settings, settings.trainer_group_id)
    probes = []

    def probe():
        probes.append(1)
        return make_consumer(settings, f"{settings.trainer_group_id}.probe")

    try:
        at = lambda offset: [TopicPartition(topic, 0, offset)]  # noqa: E731
        assert restart_offsets(consumer, probe, at(0)) == {}
        assert restart_offsets(consumer, probe, at(12)) == {}  # inside the last batch: not past the end
        assert restart_offsets(consumer, probe, at(25)) == {}  # exactly at the end: caught up
        assert restart_offsets(consumer, probe, at(40)) == {f"{topic}:0": 0}
        assert probes  # the exact end came from a fetch
    finally:
        consumer.close()
