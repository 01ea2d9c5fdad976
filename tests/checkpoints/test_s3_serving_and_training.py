"""The trainer publishes to object storage and the server loads from it: a real tiny BERT, the
embedded broker, moto's S3 API, and `streamtune rollback` against the bucket."""

from __future__ import annotations

import httpx
import pytest
import torch

from streamtune.checkpoints import open_store
from streamtune.cli import main
from streamtune.errors import ModelLoadError
from streamtune.inference.loading import ModelLoader
from streamtune.testing.crash_harness import (
    event_records,
    produce_records,
    published_records,
    trainer_metric,
    trainer_thread,
)
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.lineage import audit_lineage
from tests.inference.serving import serving
from tests.support.versions import publish_perturbed_version

TEXTS = ["a wonderful film", "an awful film"]
TOKEN = "admin-token-for-tests-0123"


def test_the_server_loads_versions_from_object_storage(tmp_path, s3_bucket, s3_server, tiny_model_dir):
    store = open_store(f"s3://{s3_bucket}/serving", tmp_path / "server")
    publish_perturbed_version(store, tiny_model_dir, seed=1)
    publish_perturbed_version(store, tiny_model_dir, seed=2)
    loader = ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32)
    base, served = loader.load(0), loader.load(2)
    assert served.version == 2 and served.manifest["parent_version"] == 1
    assert served.predict(TEXTS, [None, None]) != pytest.approx(base.predict(TEXTS, [None, None]), abs=1e-4)

    # A flipped byte in the bucket: refused, whatever the cache held before.
    key = "serving/v00000001/adapter.safetensors"
    client = s3_server.client()
    data = bytearray(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    data[-1] ^= 0xFF
    client.put_object(Bucket=s3_bucket, Key=key, Body=bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        loader.load(1)


def test_the_server_follows_pins_and_unpins_versions_in_a_bucket(settings, tmp_path, s3_bucket):
    settings = settings.model_copy(update={"checkpoint_uri": f"s3://{s3_bucket}/served"})
    store = open_store(settings.checkpoint_uri, tmp_path / "publisher")
    for seed in (1, 2):
        publish_perturbed_version(store, settings.base_model, seed=seed)
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with serving(settings, admin_token=TOKEN) as server:

        def served_version() -> int:
            return httpx.get(f"{server.url}/v1/model", timeout=30).json()["model_version"]

        assert served_version() == 2
        pinned = httpx.post(f"{server.url}/v1/admin/pin", json={"version": 1}, headers=admin, timeout=30)
        assert (pinned.json()["model_version"], pinned.json()["pinned"]) == (1, 1)
        answer = httpx.post(f"{server.url}/v1/predict", json={"instances": [{"text": "x"}]}, timeout=30)
        assert answer.headers["X-Model-Version"] == "1"
        httpx.post(f"{server.url}/v1/admin/unpin", headers=admin, timeout=30).raise_for_status()
        publish_perturbed_version(store, settings.base_model, seed=3)
        wait_for(lambda: served_version() == 3, 30, what="the server following LATEST in the bucket")
    cached = sorted(path.name for path in (settings.checkpoint_dir / "s3-cache").glob("*/v*"))
    assert cached == ["v00000001", "v00000002", "v00000003"]  # the server's own verified copies


@pytest.mark.slow
def test_the_trainer_publishes_to_object_storage_and_follows_a_rollback(settings, tmp_path, s3_bucket, monkeypatch):
    uri = f"s3://{s3_bucket}/lineage"
    settings = settings.model_copy(
        update={"checkpoint_uri": uri, "batch_size": 8, "gate_tolerance": 1e6, "gate_auc_tolerance": 1.0}
    )
    events = synthetic_events(48, seed=3, prefix="s3")
    store = open_store(uri, tmp_path / "auditor", keep_versions=1000)
    monkeypatch.setenv("STREAMTUNE_CHECKPOINT_URI", uri)
    monkeypatch.setenv("STREAMTUNE_CHECKPOINT_DIR", str(tmp_path / "operator"))

    with trainer_thread(settings) as trainer:
        produce_records(settings.bootstrap_servers, settings.events_topic, event_records(events[:32]))
        wait_for(lambda: published_records(store) == 32, 90, interval_s=0.2, what="32 events in the bucket")
        assert len(store.versions()) >= 2
        assert main(["rollback", "--to", "1"]) == 0
        reloads = "streamtune_lineage_reloads_total"
        wait_for(lambda: trainer_metric(trainer, reloads) == 1, 30, what="the trainer reloading 1")
        produce_records(settings.bootstrap_servers, settings.events_topic, event_records(events[32:]))
        wait_for(lambda: published_records(store) == 48, 90, interval_s=0.2, what="every event after the rollback")

    audit = audit_lineage(store)
    assert audit.versions[0] == 1 and store.read_manifest(audit.versions[1]).parent_version == 1
    expected = {e["event_id"] for e in events if not is_holdout(e["event_id"], settings.holdout_share)}
    assert audit.repeated() == {}
    assert sorted(audit.trained) == sorted(expected)
    assert not list((tmp_path / "operator").glob("**/*.safetensors"))  # the rollback downloaded nothing
