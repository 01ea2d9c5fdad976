"""Several replicas on one store and one announcements topic: each follows on its own."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from streamtune.kafka.clients import ensure_topics
from streamtune.testing.events import produce
from streamtune.testing.network import wait_for
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

pytestmark = pytest.mark.slow  # ~5 s: two servers and the broker

TOKEN = "admin-token-for-tests-0123"


def served(server) -> int:
    return httpx.get(f"{server.url}/v1/model").json()["model_version"]


def test_replicas_swap_on_an_announcement_and_pin_independently(settings):
    store = store_of(settings)
    publish_perturbed_version(store, settings.base_model, seed=1)
    ensure_topics(settings, [(settings.models_topic, 1)])
    # Polling the store only every 60 s: within this test, only announcements cause swaps.
    overrides = {"store_poll_seconds": 60.0, "admin_token": TOKEN}
    with contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(serving(settings, **overrides)) for _ in range(2)]
        for replica in replicas:
            wait_for(lambda r=replica: r.metric("streamtune_kafka_up") == 1, 30, what="announcements followed")
        assert [served(r) for r in replicas] == [1, 1]

        manifest = publish_perturbed_version(store, settings.base_model, seed=2)

        def announced_and_swapped() -> bool:
            # Announcements are hints and may be missed (e.g. sent while a follower assigns its
            # partitions); the trainer's next publish would announce again.
            produce(settings.kafka_bootstrap_servers, settings.models_topic, [manifest.to_json()], key=b"2")
            return all(served(r) == 2 for r in replicas)

        wait_for(announced_and_swapped, 20, interval_s=0.5, what="both replicas on version 2")
        for replica in replicas:
            answer = httpx.post(f"{replica.url}/v1/predict", json={"instances": [{"text": "x"}]})
            assert answer.headers["X-Model-Version"] == "2"
            assert "streamtune_serving_model_version 2.0" in httpx.get(f"{replica.url}/metrics").text

        pinned = httpx.post(
            f"{replicas[0].url}/v1/admin/pin", json={"version": 1}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert pinned.status_code == 200
        assert [served(r) for r in replicas] == [1, 2]  # a pin is per replica
