"""Hot swaps under concurrent load: no failed request, and every answer's version matches the
scores it carries (scores are checked against each version loaded on its own)."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
import torch

from streamtune.inference.loading import ModelLoader
from streamtune.testing.network import wait_for
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

pytestmark = pytest.mark.slow  # 3–10 s: a server under load through seven swaps

TOKEN = "admin-token-for-tests-0123"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
# (path, body, the (text, context) pairs it scores, in response order before ranking)
REQUESTS = [
    ("/v1/predict", {"instances": [{"text": "a wonderful film"}]}),
    ("/v1/predict", {"instances": [{"text": "an awful film", "context": "likes drama"}, {"text": "so-so " * 9}]}),
    (
        "/v1/rank",
        {"context": "likes comedy", "candidates": [{"id": "a", "text": "a farce"}, {"id": "b", "text": "a war film"}]},
    ),
    ("/v1/predict", {"instances": [{"text": "film number " + str(n)} for n in range(3)]}),
]
CLIENTS = 6


def pairs_of(body: dict) -> list[tuple[str, str | None]]:
    if "instances" in body:
        return [(i["text"], i.get("context")) for i in body["instances"]]
    return [(c["text"], body["context"]) for c in body["candidates"]]


def scores_of(answer: dict) -> list[float]:
    if "predictions" in answer:
        return [p["score"] for p in answer["predictions"]]
    return [c["score"] for c in sorted(answer["candidates"], key=lambda c: c["id"])]  # request order


def test_swaps_under_concurrent_load_fail_no_request_and_keep_versions_coherent(settings):
    store = store_of(settings)
    for tuning, seed in (("lora", 1), ("full", 2), ("lora", 3)):
        publish_perturbed_version(store, settings.base_model, tuning=tuning, seed=seed)
    answers: list[tuple[int, str | None, int, list[float]]] = []  # request index, header, version, scores
    failures: list[str] = []
    seen: Counter[int] = Counter()
    stop = threading.Event()

    with serving(settings, admin_token=TOKEN, store_poll_seconds=0.2) as server:

        def client(first: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                index = first
                while not stop.is_set():
                    path, body = REQUESTS[index % len(REQUESTS)]
                    response = http.post(path, json=body)
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text}")
                    else:
                        answer = response.json()
                        answers.append(
                            (
                                index % len(REQUESTS),
                                response.headers.get("X-Model-Version"),
                                answer["model_version"],
                                scores_of(answer),
                            )
                        )
                        seen[answer["model_version"]] += 1
                    index += 1

        def served_under_load(version: int) -> None:
            mark = seen[version]
            wait_for(lambda: seen[version] >= mark + 10, 30, what=f"answers from version {version}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            served_under_load(3)
            for version in (1, 2, 0, 3, 1):  # LoRA → full → base → LoRA → LoRA, each a real load
                pinned = httpx.post(f"{server.url}/v1/admin/pin", json={"version": version}, headers=ADMIN, timeout=30)
                assert pinned.status_code == 200, pinned.text
                served_under_load(version)
            assert httpx.post(f"{server.url}/v1/admin/unpin", headers=ADMIN, timeout=30).json()["model_version"] == 3
            publish_perturbed_version(store, settings.base_model, tuning="full", seed=4)  # followed from LATEST
            served_under_load(4)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        swaps = server.metric("streamtune_model_swaps_total")

    assert failures == []
    assert swaps >= 8
    loader = ModelLoader(store, settings.base_model, torch.device("cpu"), settings.max_length)
    expected = {}
    for version in range(5):
        served = loader.load(version)
        expected[version] = [served.predict(*zip(*pairs_of(body), strict=True)) for _, body in REQUESTS]
    # The versions are told apart by their scores, so a mislabelled answer cannot pass.
    assert len({round(expected[v][0][0], 4) for v in expected}) == len(expected)
    for index, header, version, scores in answers:
        assert header == str(version)
        assert scores == pytest.approx(expected[version][index], abs=1e-5), f"request {index} on version {version}"
