"""The trainer's store fills up: publishing fails without touching LATEST, training goes on, and
once there is room again the trainer publishes by itself, losing nothing."""

from __future__ import annotations

import httpx
import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.testing.events import produce, synthetic_events
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess
from streamtune.trainer.versions.lineage import audit_lineage
from tests.robustness.filesystems import fill, tiny_filesystem

pytestmark = pytest.mark.slow


def metric(url: str, name: str) -> float:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_full_disk_fails_publishing_cleanly_and_the_trainer_retries(settings, tmp_path):
    with tiny_filesystem(tmp_path / "store", 4 * 1024 * 1024) as root:
        settings = settings.model_copy(update={"checkpoint_dir": root, "holdout_share": 0.0, "keep_versions": 1000})
        store = CheckpointStore(root)
        url = f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics"
        first, second = synthetic_events(16, seed=1, prefix="first"), synthetic_events(24, seed=2, prefix="second")
        trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
        try:
            produce(settings.kafka_bootstrap_servers, settings.events_topic, first)
            wait_for(
                lambda: (v := store.latest_version()) and store.read_manifest(v).examples_seen == 16,
                120,
                what="the first events published",
            )
            published = store.latest_version()

            ballast = fill(root)  # the disk is full from here on
            produce(settings.kafka_bootstrap_servers, settings.events_topic, second)
            wait_for(lambda: metric(url, "streamtune_examples_trained_total") == 40, 60, what="training goes on")
            wait_for(lambda: metric(url, "streamtune_publish_failures_total") >= 2, 60, what="failed publishes")
            assert trainer.alive()
            assert (root / "LATEST").read_text() == f"{published}\n"
            assert store.latest_version() == published and store.verify(published).examples_seen == 16
            assert not [entry.name for entry in root.iterdir() if entry.name.startswith(".tmp-")]
            assert "No space left on device" in trainer.log()

            ballast.unlink()  # room again: no new event arrives, the trainer retries on its own
            wait_for(
                lambda: (v := store.latest_version()) and store.read_manifest(v).examples_seen == 40,
                60,
                what="the retried publish",
            )
            audit = audit_lineage(store)
            assert audit.complete and audit.repeated() == {}
            assert sorted(audit.trained) == sorted(event["event_id"] for event in first + second)
        finally:
            assert trainer.stop() == 0, trainer.log()[-3000:]
