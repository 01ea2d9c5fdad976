"""The evaluation's server client gives up after a bounded number of retries (it used to retry
503 forever) and reports what the server said; it waits for a new version in the server."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from streamtune.client import RetryPolicy
from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.server_client import ServerClient
from tests.inference.serving import store_of
from tests.support.versions import publish_perturbed_version


def test_scoring_gives_up_after_its_retries_with_the_servers_reason(not_ready_server):
    server, slot = not_ready_server
    client = ServerClient(int(server.url.rsplit(":", 1)[1]), timeout_s=10, retry=RetryPolicy(attempts=2))
    try:
        with pytest.raises(EvaluationError, match="HTTP 503: no model loaded yet"):
            client.predict([{"text": "x", "context": None}])
        assert server.metric("streamtune_requests_rejected_total", reason="not_ready") == 2
        assert client.model() is None
        slot.swap_to(0)
        assert client.wait_for_model(lambda version, _: version == 0, 10, "version 0")[0] == 0
        scored = client.predict([{"text": "x", "context": None}])
    finally:
        client.close()
    assert scored.version == 0 and len(scored.scores) == 1


def test_a_model_request_waits_in_the_server_for_a_newer_version(not_ready_server, settings):
    server, slot = not_ready_server
    slot.swap_to(0)
    version = publish_perturbed_version(store_of(settings), settings.base_model).version
    swap = threading.Timer(0.5, slot.swap_to, args=(version,))
    client = ServerClient(int(server.url.rsplit(":", 1)[1]), timeout_s=10)
    try:
        assert client.model(newer_than=0, wait_s=0.1)[0] == 0  # nothing newer within the wait
        swap.start()
        started = time.monotonic()
        assert client.model(newer_than=0, wait_s=5)[0] == version  # answered at the swap
        waited = time.monotonic() - started
        assert client.wait_for_model(lambda served, _: served == version, 10, "the new version")[0] == version
        refused = httpx.get(f"{server.url}/v1/model", params={"newer_than": 0, "wait_ms": 60_000})
    finally:
        swap.cancel()
        client.close()
    assert 0.2 < waited < 4.5
    assert refused.status_code == 422 and "wait_ms" in refused.text
