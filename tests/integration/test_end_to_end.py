"""The whole path with real parts: broker → trainer process → store → server process → REST."""

from __future__ import annotations

import json

import httpx
import pytest
from confluent_kafka import Consumer

from streamtune.checkpoints import CheckpointStore
from streamtune.testing.events import produce, synthetic_events
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.lineage import audit_lineage

pytestmark = pytest.mark.slow

INVALID_VALUES = [
    (b"not json at all", "not_json"),
    (b"\xff\xfe\x00garbage", "not_utf8"),
    (json.dumps({"event_id": "x1", "label": 1}).encode(), "missing_field"),
    (json.dumps({"event_id": "x2", "text": "fine", "label": 7}).encode(), "label_out_of_range"),
    (json.dumps({"event_id": "x3", "text": "   ", "label": 0}).encode(), "empty_text"),
]

TRAINER_METRICS = [
    "streamtune_events_consumed_total",
    "streamtune_events_invalid_total",
    "streamtune_train_batch_size",
    "streamtune_train_step_seconds",
    "streamtune_train_loss",
    "streamtune_examples_trained_total",
    "streamtune_trainer_model_version",
    "streamtune_checkpoint_publish_seconds",
    "streamtune_consumer_lag",
]
SERVER_METRICS = [
    "streamtune_serving_model_version",
    "streamtune_model_swaps_total",
    "streamtune_model_swap_seconds",
    "streamtune_model_load_failures_total",
    "streamtune_request_seconds",
    "streamtune_predictions_total",
]


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def test_events_to_served_version(settings, tmp_path):
    valid = synthetic_events(40, prefix="e2e")
    # The holdout share (by event-id hash) is never trained: it is the quality gate's data.
    trained = [event for event in valid if not is_holdout(event["event_id"], settings.holdout_share)]
    trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
    server = ServiceProcess("serve", settings, tmp_path / "server.log")
    base = f"http://127.0.0.1:{settings.http_port}"
    trainer_metrics = f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics"
    try:
        wait_for(
            lambda: httpx.get(f"{base}/readyz").status_code == 200,
            90,
            what="server ready on base model",
        )
        assert httpx.get(f"{base}/v1/model").json()["model_version"] == 0

        # Valid events with invalid ones interleaved: the invalid must not stop or taint training.
        mixed: list[bytes | dict] = []
        for index, event in enumerate(valid):
            mixed.append(event)
            if index % 8 == 3 and index // 8 < len(INVALID_VALUES):
                mixed.append(INVALID_VALUES[index // 8][0])
        produce(settings.kafka_bootstrap_servers, settings.events_topic, mixed)

        store = CheckpointStore(settings.checkpoint_dir)
        wait_for(lambda: store.latest_version(), 90, what="a published version")
        # The trainer publishes until it has trained everything valid.
        wait_for(
            lambda: metric_value(httpx.get(trainer_metrics).text, "streamtune_examples_trained_total") == len(trained),
            90,
            what="all valid events trained",
        )

        def version_with_everything() -> int | None:
            # Every valid event trained, and the offsets past every record, valid or not: a
            # trailing invalid record may reach a version after the last valid one.
            version = store.latest_version()
            if not version:
                return None
            manifest = store.read_manifest(version)
            covered = manifest.records_through == len(mixed)
            return version if manifest.examples_seen == len(trained) and covered else None

        latest = wait_for(version_with_everything, 30, what="a version containing every valid event")
        wait_for(
            lambda: httpx.get(f"{base}/v1/model").json()["model_version"] == latest,
            30,
            what="server swap",
        )

        response = httpx.post(
            f"{base}/v1/predict",
            json={
                "instances": [
                    {"text": "a wonderful film", "context": "likes drama"},
                    {"text": "an awful film"},
                ]
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == latest
        assert response.headers["X-Model-Version"] == str(latest)
        assert len(body["predictions"]) == 2
        assert all(0.0 <= p["score"] <= 1.0 for p in body["predictions"])

        manifest = store.verify(latest)
        assert manifest.examples_seen == len(trained)
        # The lineage's event lists name each trained event once and no held-out one.
        assert sorted(audit_lineage(store).trained) == sorted(event["event_id"] for event in trained)
        # Offsets cover every record, valid or not: nothing will be re-read after a restart.
        assert manifest.records_through == len(mixed)

        trainer_text = httpx.get(trainer_metrics).text
        server_text = httpx.get(f"{base}/metrics").text
        for name in TRAINER_METRICS:
            assert name in trainer_text, name
        for name in SERVER_METRICS:
            assert name in server_text, name
        assert metric_value(trainer_text, "streamtune_events_consumed_total") == len(mixed)
        assert metric_value(trainer_text, "streamtune_trainer_model_version") == latest
        assert metric_value(server_text, "streamtune_serving_model_version") == latest
        assert metric_value(server_text, "streamtune_predictions_total") >= 2

        dead = read_all(settings.kafka_bootstrap_servers, settings.dlq_topic, len(INVALID_VALUES))
        reasons = sorted(dict(m.headers())["streamtune-error"].decode() for m in dead)
        assert reasons == sorted(reason for _, reason in INVALID_VALUES)
        assert sorted(m.value() for m in dead) == sorted(value for value, _ in INVALID_VALUES)
    finally:
        assert trainer.stop() == 0, trainer.log()[-3000:]
        server.stop()


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    messages: list = []
    try:

        def collect():
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
            return len(messages) >= expected

        wait_for(collect, timeout_s, interval_s=0, what=f"{expected} messages on {topic}")
    finally:
        consumer.close()
    return messages
