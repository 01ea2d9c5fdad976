"""Ten thousand hostile events through the real broker into a real trainer process.

Hypothesis generates the stream: hostile values (invalid by construction, each with the reason
it must get) interleaved with valid events, some of them re-delivered under the same id. The
trainer must not crash, must dead-letter every invalid value with its reason, and must train
every valid event exactly once. The reconciliation is exact because the holdout is off
(``holdout_share=0``: no share of valid events is set aside, and the quality gate, which needs
the holdout, never rejects a version), the dedupe window is larger than the stream (every
re-delivered id is caught) and retention keeps every version (the lineage audit is complete).
"""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from streamtune.checkpoints import CheckpointStore
from streamtune.ingest.dead_letters import ERROR_HEADER
from streamtune.testing.events import produce
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess
from streamtune.trainer.versions.lineage import audit_lineage
from tests.robustness.hostile import Sample, stream_item

pytestmark = pytest.mark.slow

HOSTILE_COUNT = 10_000
_ITEMS_PER_EXAMPLE = 25


def generate_stream(hostile_count: int) -> list[Sample]:
    """At least ``hostile_count`` hostile values with valid events among them, in stream order."""
    collected: list[Sample] = []

    @seed(20_260_101)  # the same stream on every run
    @settings(
        max_examples=hostile_count // _ITEMS_PER_EXAMPLE + 5,  # + a margin for rejected examples
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(stream_item(), min_size=_ITEMS_PER_EXAMPLE, max_size=_ITEMS_PER_EXAMPLE))
    def collect(items: list[list[Sample]]) -> None:
        collected.extend(sample for item in items for sample in item)

    collect()
    return collected


def metric_samples(text: str, name: str) -> dict[str, float]:
    """Samples of one metric family by their label string (``""`` for an unlabelled one)."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            found[labels[len(name) :]] = float(value)
    return found


def read_topic(bootstrap: str, topic: str) -> list:
    """Every message on partition 0 of ``topic`` up to its high watermark (no group needed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader", "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages: list = []

        def collect() -> bool:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
            return len(messages) >= high

        wait_for(collect, 60, interval_s=0, what=f"{high} messages on {topic}")
        return messages
    finally:
        consumer.close()


def test_hostile_stream_is_dead_lettered_and_every_valid_event_trained_once(settings, tmp_path):
    settings = settings.model_copy(
        update={
            "batch_size": 256,
            "max_length": 16,
            "holdout_share": 0.0,
            "keep_versions": 10_000,
            "max_batch_latency_ms": 300,
        }
    )
    trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
    metrics_url = f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics"
    try:
        stream = generate_stream(HOSTILE_COUNT)  # meanwhile the trainer starts
        hostile = [sample for sample in stream if not sample.valid]
        valid = [sample for sample in stream if sample.valid]
        distinct_ids = {sample.event_id for sample in valid}
        assert len(hostile) >= HOSTILE_COUNT
        produce(settings.kafka_bootstrap_servers, settings.events_topic, [sample.raw for sample in stream])

        store = CheckpointStore(settings.checkpoint_dir)

        def everything_published() -> bool:
            text = httpx.get(metrics_url).text
            consumed = metric_samples(text, "streamtune_events_consumed_total").get("", 0)
            latest = store.latest_version()
            return consumed == len(stream) and latest and store.read_manifest(latest).examples_seen == len(distinct_ids)

        wait_for(everything_published, 240, interval_s=0.5, what="every event consumed and its training published")
        assert trainer.alive(), trainer.log()[-3000:]
        text = httpx.get(metrics_url).text

        # Every invalid value is in the dead-letter topic, byte for byte, with the reason it was built for.
        dead = read_topic(settings.kafka_bootstrap_servers, settings.dlq_topic)
        got = Counter((message.value(), dict(message.headers())[ERROR_HEADER].decode()) for message in dead)
        assert got == Counter((sample.raw, sample.reason) for sample in hostile)
        invalid_by_reason = metric_samples(text, "streamtune_events_invalid_total")
        assert {labels.split('"')[1]: count for labels, count in invalid_by_reason.items()} == Counter(
            sample.reason for sample in hostile
        )

        # Every valid event is trained exactly once; re-deliveries are counted as duplicates.
        assert metric_samples(text, "streamtune_examples_trained_total")[""] == len(distinct_ids)
        assert metric_samples(text, "streamtune_duplicate_events_total")[""] == len(valid) - len(distinct_ids)
        audit = audit_lineage(store)
        assert audit.complete and audit.repeated() == {}
        assert sorted(audit.trained) == sorted(distinct_ids)
        assert store.read_manifest(audit.versions[-1]).records_through == len(stream)

        # The log holds no event content: no text or user id of a valid event appears in it.
        log = trainer.log()
        assert "Traceback" not in log
        for sample in valid:
            document = json.loads(sample.raw)
            for field in ("text", "user_id", "context"):
                value = str(document.get(field) or "")
                if len(value) >= 16:
                    assert value not in log, f"{field} of an event was logged"
        print(
            f"\nfuzzed {len(stream)} events: {len(hostile)} hostile (all dead-lettered, "
            f"{len(Counter(s.reason for s in hostile))} reasons), {len(valid)} valid with "
            f"{len(valid) - len(distinct_ids)} re-deliveries, {len(distinct_ids)} trained once; "
            f"{len(audit.versions)} versions"
        )
    finally:
        assert trainer.stop() == 0, trainer.log()[-3000:]
