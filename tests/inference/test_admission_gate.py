"""Shedding at the door (before the body is parsed) and batches shared between the workers,
with a real tiny transformer and real HTTP."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from streamtune.inference.batch_policy import BatchingPolicy
from streamtune.inference.batching import DynamicBatcher
from streamtune.metrics import ServingMetrics
from tests.inference.serving import serving
from tests.inference.test_admission import TEXT, overload_until_shed, predict, served  # noqa: F401 (fixture)


@pytest.fixture
def server(settings):
    with serving(settings, serve_max_queue_ms=50.0, serve_client_share=1.0, serve_max_batch=8) as running:
        yield running


def test_an_overloaded_server_refuses_before_parsing_the_body(server):
    release, _answers, threads = overload_until_shed(server)
    # Not JSON at all: parsed, it would be a 422; refused at the door it never is.
    with httpx.Client() as client:  # one connection: it must stay usable after the refusal
        broken = client.post(
            f"{server.url}/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert client.get(f"{server.url}/healthz").status_code == 200
    release.set()
    for thread in threads:
        thread.join(60)
    assert broken.status_code == 503 and int(broken.headers["Retry-After"]) >= 1
    assert "expected wait" in broken.json()["detail"]
    assert server.metric("streamtune_requests_rejected_total", reason="invalid") == 0
    # The door's refusals are timed under the route they were meant for.
    assert server.metric("streamtune_request_seconds_count", endpoint="/v1/predict", status="503") >= 2
    # Once the queue drains, the same malformed body is parsed and refused as invalid.
    after = httpx.post(f"{server.url}/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert after.status_code == 422


class RecordingModel:
    """The served model, noting which worker thread scored how many rows in each batch."""

    def __init__(self, model) -> None:
        self.served = model
        self.batches: list[tuple[str, int]] = []

    def __getattr__(self, name: str):
        return getattr(self.served, name)

    def score_groups(self, texts, contexts, max_rows):
        self.batches.append((threading.current_thread().name, len(texts)))
        yield from self.served.score_groups(texts, contexts, max_rows)


def test_two_workers_share_a_queue_instead_of_one_taking_it_all(served):  # noqa: F811 (fixture)
    model = RecordingModel(served)
    batcher = DynamicBatcher(lambda: model, ServingMetrics(), BatchingPolicy(max_batch=64, workers=2))
    batcher.start()
    release, running = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(30)

    holders = [threading.Thread(target=batcher.run_exclusive, args=(hold,)) for _ in range(2)]
    for holder in holders:
        holder.start()

    async def scenario() -> list:
        assert running.wait(10)
        tasks = [asyncio.ensure_future(batcher.score(TEXT * 4, [None] * 4)) for _ in range(8)]
        await asyncio.sleep(0.05)
        assert batcher.queued_rows == 32
        release.set()
        return await asyncio.gather(*tasks)

    try:
        answers = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert all(len(answer.scores) == 4 for answer in answers)
    assert {thread for thread, _ in model.batches} == {"streamtune-batcher-0", "streamtune-batcher-1"}
    assert model.batches[0][1] == 16  # half of the 32 queued rows, not all of them
    assert sum(rows for _, rows in model.batches) == 32
