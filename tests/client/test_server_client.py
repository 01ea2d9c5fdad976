"""The evaluation's server client gives up after a bounded number of retries (it used to retry
503 forever) and reports what the server said."""

from __future__ import annotations

import pytest

from streamtune.client import RetryPolicy
from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.server_client import ServerClient


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
