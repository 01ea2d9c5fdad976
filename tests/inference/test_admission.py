"""Admission control with a real (tiny) transformer and real HTTP: shed at the door, per-client
shares, deadlines and disconnected clients dropped before the model.

The worker is held (a task on it that waits for a signal) so queues build deterministically;
a refusal that arrives while the worker is still held was decided at the door, not after a wait.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.inference.admission import Admission, ClientShareError, DeadlinePassedError, OverloadedError
from streamtune.inference.batch_policy import BatchingPolicy
from streamtune.inference.batching import DynamicBatcher
from streamtune.inference.loading import ModelLoader
from streamtune.metrics import ServingMetrics
from streamtune.testing.network import wait_for
from tests.inference.serving import serving
from tests.inference.test_batching import HeldWorker

TEXT = ["a film about a quiet town"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    store = CheckpointStore(tmp_path_factory.mktemp("store"))
    return ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32).load(0)


def measured_batcher(served, metrics, admission, **options) -> DynamicBatcher:
    """A started batcher that has scored a few batches, so its rate is measured."""
    batcher = DynamicBatcher(lambda: served, metrics, BatchingPolicy(max_batch=8, **options), admission)
    batcher.start()

    async def warm() -> None:
        for _ in range(5):
            await batcher.score(TEXT * 8, [None] * 8)

    asyncio.run(warm())
    assert batcher.rate.rows_per_second is not None
    return batcher


def rejected(metrics: ServingMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("streamtune_requests_rejected_total", {"reason": reason}) or 0.0


def test_a_request_that_would_wait_past_the_budget_is_refused_at_once(served):
    metrics = ServingMetrics()
    batcher = measured_batcher(served, metrics, Admission(max_queue_s=0.05, client_share=1.0))
    budget_rows = 0

    async def scenario() -> tuple[list, list]:
        nonlocal budget_rows
        held = HeldWorker(batcher)  # from here the measured rate stands still
        budget_rows = int(0.05 * batcher.rate.rows_per_second)
        admitted, refused = [], []
        for index in range(budget_rows + 20):
            try:
                admitted.append(asyncio.ensure_future(batcher.score(TEXT, [None], client=f"c{index}")))
                await asyncio.sleep(0)  # lets the request queue (or be refused) now
                if admitted[-1].done() and admitted[-1].exception() is not None:
                    refused.append(admitted.pop().exception())
            except OverloadedError as error:
                refused.append(error)
        assert batcher.queued_rows <= budget_rows + 1  # refused while the worker was held: at the door
        held.release()
        return await asyncio.gather(*admitted), refused

    try:
        answered, refused = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert refused and all(isinstance(error, OverloadedError) for error in refused)
    assert all(error.status == 503 and error.retry_after_s >= 1 for error in refused)
    assert len(answered) >= budget_rows - 1 and all(len(result.scores) == 1 for result in answered)
    assert rejected(metrics, "overloaded") == 0  # counted by the HTTP layer, which answers them


def test_one_client_over_its_share_gets_429_while_others_are_admitted(served):
    batcher = measured_batcher(
        served, ServingMetrics(), Admission(max_queue_s=1.0, client_share=0.25), max_queued=10**6
    )

    async def scenario() -> tuple[BaseException, object]:
        held = HeldWorker(batcher)
        share = int(0.25 * 1.0 * batcher.rate.rows_per_second)
        hog = [asyncio.ensure_future(batcher.score(TEXT * 8, [None] * 8, client="hog")) for _ in range(share // 8)]
        await asyncio.sleep(0)
        with pytest.raises(ClientShareError) as refusal:
            await batcher.score(TEXT * 8, [None] * 8, client="hog")
        other = asyncio.ensure_future(batcher.score(TEXT, [None], client="polite"))
        held.release()
        await asyncio.gather(*hog)
        return refusal.value, await other

    try:
        refusal, polite = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert refusal.status == 429
    assert len(polite.scores) == 1


def test_a_request_past_its_deadline_is_dropped_before_the_model(served):
    metrics = ServingMetrics()
    batcher = measured_batcher(served, metrics, Admission(max_queue_s=10.0), default_deadline_s=30.0)
    scored_before = 0.0

    async def scenario() -> tuple[BaseException | None, object]:
        nonlocal scored_before
        held = HeldWorker(batcher)
        scored_before = metrics.registry.get_sample_value("streamtune_predictions_total")
        late = asyncio.ensure_future(batcher.score(TEXT * 3, [None] * 3, client="a", deadline_s=0.05))
        on_time = asyncio.ensure_future(batcher.score(TEXT, [None], client="b"))
        await asyncio.sleep(0.2)  # the first deadline passes while the worker is held
        held.release()
        results = await asyncio.gather(late, on_time, return_exceptions=True)
        return results[0], results[1]

    try:
        late, on_time = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert isinstance(late, DeadlinePassedError)
    assert len(on_time.scores) == 1
    assert metrics.registry.get_sample_value("streamtune_predictions_total") == scored_before + 1  # not 4
    assert rejected(metrics, "deadline_passed") == 1


@pytest.fixture
def server(settings):
    with serving(settings, serve_max_queue_ms=50.0, serve_client_share=1.0, serve_max_batch=8) as running:
        yield running


def hold_worker(server, tasks: int = 4) -> threading.Event:
    """Occupy every worker of the running server's batcher until the returned event is set:
    more holding tasks than workers, so a worker that finishes one picks up the next."""
    release, running = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(60)

    for _ in range(tasks):
        threading.Thread(target=server.app.state.batcher.run_exclusive, args=(hold,), daemon=True).start()
    assert running.wait(10)
    return release


def predict(url: str, client: str, timeout: float = 30.0, **headers: str) -> httpx.Response:
    body = {"instances": [{"text": "a film about a quiet town"}] * 4}
    return httpx.post(f"{url}/v1/predict", json=body, headers={"X-Client-Id": client, **headers}, timeout=timeout)


def overload_until_shed(server) -> tuple[threading.Event, list[httpx.Response], list[threading.Thread]]:
    """Warm the rate estimate, hold the worker, send 60 clients' requests; return once one is shed."""
    for _ in range(10):  # the workers measure their rate on real batches
        assert predict(server.url, "warm").status_code == 200
    release = hold_worker(server)
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda i=i: answers.append(predict(server.url, f"c{i}"))) for i in range(60)]
    for thread in threads:
        thread.start()
    wait_for(lambda: any(answer.status_code == 503 for answer in answers), 30, what="a shed request")
    return release, answers, threads


def test_over_http_overload_is_shed_with_503_and_retry_after_at_the_door(server):
    release, answers, threads = overload_until_shed(server)
    shed_while_held = [answer for answer in answers if answer.status_code == 503]
    release.set()
    for thread in threads:
        thread.join(60)
    assert shed_while_held and all(int(answer.headers["Retry-After"]) >= 1 for answer in shed_while_held)
    statuses = {answer.status_code for answer in answers}
    assert statuses <= {200, 503} and 200 in statuses
    assert server.metric("streamtune_requests_rejected_total", reason="overloaded") == len(
        [answer for answer in answers if answer.status_code == 503]
    )


def test_over_http_a_client_that_gave_up_is_never_scored(server):
    assert predict(server.url, "warm").status_code == 200
    release = hold_worker(server)
    scored = server.metric("streamtune_predictions_total")  # the worker is held: this stands still
    with pytest.raises(httpx.TimeoutException):
        predict(server.url, "impatient", timeout=0.5)
    wait_for(lambda: server.metric("streamtune_requests_rejected_total", reason="client_gone") == 1, 10)
    answers: list[httpx.Response] = []
    hurried = threading.Thread(  # a deadline shorter than the hold, given in the header
        target=lambda: answers.append(predict(server.url, "hurried", **{"X-Request-Deadline-Ms": "100"}))
    )
    hurried.start()
    wait_for(lambda: server.app.state.batcher.queued_rows == 8, 10, what="the hurried request queued")
    threading.Event().wait(0.3)  # its deadline passes while the worker is held
    release.set()
    hurried.join(30)
    assert answers[0].status_code == 503 and "deadline passed" in answers[0].json()["detail"]
    assert predict(server.url, "patient").status_code == 200
    assert predict(server.url, "patient").status_code == 200  # the first one's count is in by now
    # Only the patient requests' rows (the second's count may still be on its way): the 4
    # impatient and 4 hurried rows were never scored.
    assert server.metric("streamtune_predictions_total") - scored in (4, 8)
