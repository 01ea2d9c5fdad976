"""The REST contract of one replica, over real HTTP against the app `streamtune serve` builds."""

from __future__ import annotations

import threading

import httpx
import pytest
import torch

from streamtune.inference.loading import ModelLoader
from streamtune.testing.network import wait_for
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

PAIRS = [("a wonderful film", "likes drama"), ("an awful film", None), ("a long " + "saga " * 20, "x")]


def reference_scores(settings, version: int, pairs) -> list[float]:
    loader = ModelLoader(store_of(settings), settings.base_model, torch.device("cpu"), settings.max_length)
    return loader.load(version).predict([t for t, _ in pairs], [c for _, c in pairs])


def test_predict_returns_the_versions_scores_with_version_headers(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=1)
    with serving(settings) as server:
        response = httpx.post(
            f"{server.url}/v1/predict", json={"instances": [{"text": t, "context": c} for t, c in PAIRS]}
        )
        info = httpx.get(f"{server.url}/v1/model")
        ready = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == 1 and response.headers["X-Model-Version"] == "1"
    assert response.headers["X-Data-Watermark-Ms"] == "1700000000000"
    scores = [p["score"] for p in body["predictions"]]
    assert scores == pytest.approx(reference_scores(settings, 1, PAIRS), abs=1e-5)
    assert info.json()["model_version"] == 1 and info.json()["pinned"] is None
    assert info.headers["X-Model-Version"] == "1"
    assert ready.json() == {"status": "ready", "model_version": 1}


def test_rank_sorts_candidates_by_their_scores_and_keeps_top_k(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=2)
    texts = [f"candidate film number {index} " + "word " * index for index in range(8)]
    candidates = [{"id": f"item-{index}", "text": text} for index, text in enumerate(texts)]
    with serving(settings) as server:
        full = httpx.post(f"{server.url}/v1/rank", json={"context": "likes drama", "candidates": candidates})
        top = httpx.post(f"{server.url}/v1/rank", json={"context": "likes drama", "candidates": candidates, "top_k": 3})
        duplicate = httpx.post(f"{server.url}/v1/rank", json={"candidates": [candidates[0], candidates[0]]})
        missing = httpx.post(f"{server.url}/v1/rank", json={"candidates": [{"id": "a"}]})
    assert full.status_code == 200, full.text
    expected = dict(
        zip(
            (c["id"] for c in candidates),
            reference_scores(settings, 1, [(t, "likes drama") for t in texts]),
            strict=True,
        )
    )
    ranked = full.json()["candidates"]
    assert [c["id"] for c in ranked] == sorted(expected, key=lambda key: -expected[key])
    assert [c["score"] for c in ranked] == pytest.approx([expected[c["id"]] for c in ranked], abs=1e-5)
    assert top.json()["candidates"] == ranked[:3] and top.headers["X-Model-Version"] == "1"
    assert duplicate.status_code == 422 and "candidate ids must be unique" in duplicate.text
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "candidates", 0, "text"]


def test_invalid_requests_are_refused_with_the_reason(settings):
    with serving(settings, max_instances=4, max_request_bytes=4096) as server:
        url = f"{server.url}/v1/predict"
        empty_text = httpx.post(url, json={"instances": [{"text": "fine"}, {"text": ""}]})
        too_many = httpx.post(url, json={"instances": [{"text": "x"}] * 5})
        too_large = httpx.post(url, json={"instances": [{"text": "x" * 5000}]})
        streamed = httpx.post(url, content=iter([b'{"instances": [', b" " * 5000, b"]}"]))  # chunked
        not_json = httpx.post(url, content=b"text=hello", headers={"Content-Type": "application/x-www-form-urlencoded"})
        extra = httpx.post(url, json={"instances": [{"text": "x", "label": 1}]})
    assert empty_text.status_code == 422 and empty_text.json()["detail"][0]["loc"] == ["body", "instances", 1, "text"]
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "instances"]
    assert too_large.status_code == 413 and streamed.status_code == 413
    assert not_json.status_code == 415
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "instances", 0, "label"]
    assert server.metric("streamtune_requests_rejected_total", reason="invalid") == 3
    assert server.metric("streamtune_requests_rejected_total", reason="body_too_large") == 2
    assert server.metric("streamtune_requests_rejected_total", reason="unsupported_media_type") == 1


def test_overload_is_answered_429_with_retry_after_and_queued_work_completes(settings):
    # One batcher worker, so that holding it holds every forward.
    with serving(settings, max_instances=4, serve_max_queue=4, serve_workers=1) as server:
        batcher = server.app.state.batcher
        release, running = threading.Event(), threading.Event()
        holder = threading.Thread(target=batcher.run_exclusive, args=(lambda: (running.set(), release.wait(30)),))
        holder.start()
        assert running.wait(10)
        body = {"instances": [{"text": "queued"}] * 4}
        queued: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: queued.append(httpx.post(f"{server.url}/v1/predict", json=body, timeout=30))
        )
        sender.start()
        wait_for(lambda: batcher.queued_rows == 4, 10, what="the first request queued")
        refused = httpx.post(f"{server.url}/v1/predict", json={"instances": [{"text": "one more"}]})
        release.set()
        sender.join(30)
        holder.join(10)
        assert server.metric("streamtune_requests_rejected_total", reason="queue_full") == 1
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert queued[0].status_code == 200 and len(queued[0].json()["predictions"]) == 4


def test_not_ready_until_a_model_is_loaded(settings):
    from streamtune.inference.app import create_app
    from streamtune.inference.app_parts import ServingParts
    from streamtune.inference.batching import DynamicBatcher
    from streamtune.inference.slot import ModelSlot
    from streamtune.metrics import ServingMetrics
    from tests.inference.serving import running

    metrics = ServingMetrics()
    slot = ModelSlot(lambda version: None, metrics)  # never asked to load: no follower runs
    app = create_app(ServingParts(slot, metrics, DynamicBatcher(lambda: slot.current, metrics), store_of(settings)))
    with running(app, metrics, ready=False) as server:
        answers = {
            path: httpx.request(method, f"{server.url}{path}", json=body)
            for method, path, body in [
                ("GET", "/readyz", None),
                ("GET", "/v1/model", None),
                ("POST", "/v1/predict", {"instances": [{"text": "x"}]}),
                ("POST", "/v1/rank", {"candidates": [{"id": "a", "text": "x"}]}),
            ]
        }
        health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200
    for path, answer in answers.items():
        assert answer.status_code == 503, path
        assert answer.headers["Retry-After"] == "1", path
