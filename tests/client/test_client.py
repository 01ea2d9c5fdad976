"""The Python client against the real inference app over real HTTP: typed results, the server's
messages in exceptions, and retries that are bounded and honour Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from streamtune.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    RetryPolicy,
    ServerUnreachableError,
)
from streamtune.testing.network import free_port
from tests.client.conftest import loader_for
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

TOKEN = "client-test-admin-token"
PAIRS = [("a wonderful film", "likes drama"), ("an awful film", None)]


def test_predict_rank_and_model_return_typed_results_matching_the_model(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=1)
    expected = loader_for(settings).load(1).predict([t for t, _ in PAIRS], [c for _, c in PAIRS])
    with serving(settings, admin_token=TOKEN) as server, Client(server.url, token=TOKEN) as client:
        predicted = client.predict(PAIRS)
        ranked = client.rank([(7, "an awful film"), ("b", "a wonderful film")], context="likes drama", top_k=1)
        info = client.model()
        listing = client.models()
    assert predicted.model_version == 1 and predicted.data_watermark_ms == 1_700_000_000_000
    assert predicted.scores == pytest.approx(expected, abs=1e-5)
    assert len(ranked.candidates) == 1 and ranked.model_version == 1
    assert ranked.ids[0] in (7, "b")  # an integer id (as events allow) comes back as an integer
    assert info.model_version == 1 and info.pinned is None and info.manifest["version"] == 1
    assert listing.serving == 1 and [entry.version for entry in listing.versions] == [1]


def test_the_async_client_gives_the_same_answers(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=2)

    async def calls(url: str):
        async with AsyncClient(url, token=TOKEN) as client:
            return await client.predict(PAIRS), await client.model(), await client.pin(0), await client.unpin()

    with serving(settings, admin_token=TOKEN) as server, Client(server.url) as blocking:
        expected = blocking.predict(PAIRS)
        predicted, info, pinned, unpinned = asyncio.run(calls(server.url))
    assert predicted == expected and info.model_version == 1
    assert (pinned.model_version, pinned.pinned) == (0, 0)
    assert (unpinned.model_version, unpinned.pinned) == (1, None)


def test_errors_carry_the_servers_message(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=3)
    with serving(settings, admin_token=TOKEN) as server:
        with Client(server.url) as anonymous, pytest.raises(InvalidRequestError) as invalid:
            anonymous.predict([{"text": ""}])
        with Client(server.url) as anonymous, pytest.raises(AuthenticationError) as unauthenticated:
            anonymous.pin(1)
        with Client(server.url, token=TOKEN) as admin:
            with pytest.raises(NotFoundError) as missing:
                admin.pin(42)
            pinned = admin.pin(1)
    assert invalid.value.status == 422 and "instances.0.text" in invalid.value.message
    assert unauthenticated.value.status == 401 and "bearer token" in str(unauthenticated.value)
    assert "version 42 does not exist" in missing.value.message
    assert (pinned.model_version, pinned.pinned) == (1, 1)


def test_retries_are_bounded_and_wait_what_retry_after_says(not_ready_server):
    server, _ = not_ready_server
    pauses: list[float] = []
    policy = RetryPolicy(attempts=3, backoff_s=0.01, jitter=0)
    with Client(server.url, retry=policy, sleep=pauses.append) as client, pytest.raises(OverloadedError) as refused:
        client.predict(["x"])
    assert pauses == [1.0, 1.0]  # the server's Retry-After, not the 0.01 s backoff
    assert server.metric("streamtune_requests_rejected_total", reason="not_ready") == 3  # then it gave up
    assert refused.value.status == 503 and refused.value.retry_after_s == 1.0
    assert "no model" in refused.value.message


def test_a_retry_after_beyond_the_longest_pause_is_not_waited_for(not_ready_server):
    server, _ = not_ready_server
    pauses: list[float] = []
    client = Client(server.url, retry=RetryPolicy(max_delay_s=0.5), sleep=pauses.append)
    with client, pytest.raises(OverloadedError):
        client.model()
    assert pauses == []


def test_a_retry_succeeds_once_the_server_is_ready(not_ready_server):
    server, slot = not_ready_server
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # while the client waits, the model finishes loading
        pauses.append(seconds)
        slot.swap_to(0)

    with Client(server.url, sleep=pause) as client:
        predicted = client.predict(["x"])
    assert pauses == [1.0] and predicted.model_version == 0 and len(predicted.scores) == 1


def test_async_retries_are_bounded_too(not_ready_server):
    server, _ = not_ready_server
    pauses: list[float] = []

    async def record(seconds: float) -> None:
        pauses.append(seconds)

    async def call() -> None:
        async with AsyncClient(server.url, retry=RetryPolicy(attempts=2), sleep=record) as client:
            await client.predict(["x"])

    with pytest.raises(OverloadedError):
        asyncio.run(call())
    assert pauses == [1.0]


def test_a_refused_connection_is_retried_a_bounded_number_of_times():
    pauses: list[float] = []
    policy = RetryPolicy(attempts=3, backoff_s=0.05, jitter=0)
    client = Client(f"http://127.0.0.1:{free_port()}", retry=policy, sleep=pauses.append)
    with client, pytest.raises(ServerUnreachableError, match="ConnectError"):
        client.predict(["x"])
    assert pauses == [0.05, 0.1]  # exponential backoff without a Retry-After
