"""A 30-second broker outage, and a broker that comes back empty.

Our own embedded broker (the session one is shared by every test) is stopped for 30 s and a new,
empty one started on the same port: the memory-only broker has lost every topic, group and
offset. Neither service may crash or need a restart. During the outage the server keeps
answering with its current version and the trainer reports ``streamtune_kafka_up 0``; afterwards
the trainer recreates its topics, notices that the events topic is a new one (its old offsets are
void), reads the new topic from its beginning and publishes versions containing the new events.
"""

from __future__ import annotations

import time

import httpx
import pytest

from streamtune.broker import EmbeddedBroker
from streamtune.checkpoints import CheckpointStore
from streamtune.testing.events import produce, synthetic_events
from streamtune.testing.network import free_port, wait_for
from streamtune.testing.processes import ServiceProcess
from streamtune.trainer.versions.lineage import audit_lineage

pytestmark = pytest.mark.slow

OUTAGE_S = 30.0


def gauge(url: str, name: str) -> float | None:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_services_survive_a_broker_outage_and_a_broker_that_lost_its_topics(settings, tmp_path):
    port = free_port()
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker-1.log").start()
    settings = settings.model_copy(
        update={"kafka_bootstrap_servers": broker.bootstrap_servers, "holdout_share": 0.0, "keep_versions": 1000}
    )
    before = synthetic_events(60, seed=1, prefix="before")
    # More new events than the old topic held per partition: resuming at the old offsets would
    # silently skip the new topic's first records.
    after = synthetic_events(100, seed=2, prefix="after")
    store = CheckpointStore(settings.checkpoint_dir)
    api = f"http://127.0.0.1:{settings.http_port}"
    trainer_metrics = f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics"
    trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
    server = ServiceProcess("serve", settings, tmp_path / "server.log")
    trained = lambda: gauge(trainer_metrics, "streamtune_examples_trained_total")  # noqa: E731

    def serving_version(version: int) -> bool:
        response = httpx.post(f"{api}/v1/predict", json={"instances": [{"text": "a great film"}]}, timeout=10)
        return response.status_code == 200 and response.headers["X-Model-Version"] == str(version)

    def published_with(count: int) -> int | None:
        latest = store.latest_version()
        return latest if latest and store.read_manifest(latest).examples_seen == count else None

    try:
        wait_for(lambda: httpx.get(f"{api}/readyz").status_code == 200, 120, what="server ready")
        produce(broker.bootstrap_servers, settings.events_topic, before)
        wait_for(lambda: trained() == len(before), 120, what="events before the outage trained")
        version_before = wait_for(lambda: published_with(len(before)), 60, what="their version")
        wait_for(lambda: serving_version(version_before), 60, what="server on that version")
        assert gauge(trainer_metrics, "streamtune_kafka_up") == 1

        # --- the outage ---------------------------------------------------------------------
        broker.stop()
        started = time.monotonic()
        answers, kafka_up = [], []
        while time.monotonic() - started < OUTAGE_S:
            response = httpx.post(f"{api}/v1/predict", json={"instances": [{"text": "during"}]}, timeout=10)
            answers.append((response.status_code, response.headers.get("X-Model-Version")))
            kafka_up.append(gauge(trainer_metrics, "streamtune_kafka_up"))
            time.sleep(1.0)
        down_for = time.monotonic() - started
        assert trainer.alive() and server.alive()
        assert answers and set(answers) == {(200, str(version_before))}, answers
        assert 0.0 in kafka_up, kafka_up
        assert kafka_up[-1] == 0.0, kafka_up  # still down at the end, not flapping back to 1

        # --- an empty broker on the same port -------------------------------------------------
        broker = EmbeddedBroker(port, log_path=tmp_path / "broker-2.log").start()
        wait_for(lambda: gauge(trainer_metrics, "streamtune_kafka_up") == 1, 60, what="kafka_up back to 1")
        produce(broker.bootstrap_servers, settings.events_topic, after)
        total = len(before) + len(after)
        wait_for(lambda: trained() == total, 120, what="events after the outage trained")
        version_after = wait_for(lambda: published_with(total), 60, what="a version with every event")
        wait_for(lambda: serving_version(version_after), 60, what="server on the new version")

        assert trainer.alive() and server.alive()  # the same processes throughout: no restart
        audit = audit_lineage(store)
        assert audit.complete and audit.repeated() == {}
        assert sorted(audit.trained) == sorted(event["event_id"] for event in before + after)
        assert "was recreated" in trainer.log()
        print(
            f"\nbroker down {down_for:.0f} s; {len(answers)} predictions answered meanwhile; "
            f"versions {version_before} -> {version_after}"
        )
    finally:
        trainer_code = trainer.stop()
        server.stop()
        broker.stop()
    assert trainer_code == 0, trainer.log()[-3000:]
