"""The Open Inference Protocol (v2) routes, called with the real Triton HTTP client."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.inference.serving import serving, store_of
from tests.inference.test_api import reference_scores
from tests.support.versions import publish_perturbed_version

PAIRS = [("a wonderful film", "likes drama"), ("an awful film", ""), ("a long " + "saga " * 20, "x")]


def text_inputs(pairs, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name, column in (("text", [t for t, _ in pairs]), ("context", [c for _, c in pairs])):
        tensor = triton.InferInput(name, [len(column)], "BYTES")
        tensor.set_data_from_numpy(np.array([value.encode() for value in column], dtype=object), binary_data=binary)
        inputs.append(tensor)
    return inputs


def v1_scores(url: str, pairs) -> list[float]:
    instances = [{"text": t, "context": c or None} for t, c in pairs]
    return [p["score"] for p in httpx.post(f"{url}/v1/predict", json={"instances": instances}).json()["predictions"]]


def test_triton_client_infers_the_same_scores_as_v1_predict(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=1)
    with serving(settings) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("streamtune")
        metadata = client.get_model_metadata("streamtune")
        binary = client.infer("streamtune", text_inputs(PAIRS, binary=True))  # Triton's default encoding
        as_json = client.infer(
            "streamtune",
            text_inputs(PAIRS, binary=False),
            outputs=[triton.InferRequestedOutput("score", binary_data=False)],
            request_id="req-7",
        )
        expected = v1_scores(server.url, PAIRS)
        client.close()
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        "text": "BYTES",
        "context": "BYTES",
        "user_id": "BYTES",
        "item_id": "BYTES",
    }
    assert metadata["outputs"] == [{"name": "score", "datatype": "FP32", "shape": [-1]}]
    for result in (binary, as_json):
        assert result.as_numpy("score").dtype == np.float32
        assert result.as_numpy("score").tolist() == pytest.approx(expected, rel=1e-6, abs=1e-7)
        assert result.get_response()["model_version"] == "1"
    assert as_json.get_response()["id"] == "req-7"


def test_a_retained_version_is_scored_by_that_version(settings):
    store = store_of(settings)
    for seed in (1, 2):
        publish_perturbed_version(store, settings.base_model, seed=seed)
    pairs = [(t, c or None) for t, c in PAIRS]
    with serving(settings) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        older = client.infer("streamtune", text_inputs(PAIRS, binary=True), model_version="1")
        served = client.infer("streamtune", text_inputs(PAIRS, binary=True), model_version="2")
        with pytest.raises(InferenceServerException, match="not retained"):
            client.infer("streamtune", text_inputs(PAIRS, binary=True), model_version="9")
        client.close()
    assert older.get_response()["model_version"] == "1"
    assert older.as_numpy("score").tolist() == pytest.approx(reference_scores(settings, 1, pairs), abs=1e-5)
    assert served.as_numpy("score").tolist() == pytest.approx(reference_scores(settings, 2, pairs), abs=1e-5)


def test_errors_follow_the_protocol(settings):
    with serving(settings, model_name="ranker") as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.infer("streamtune", text_inputs(PAIRS, binary=True))
        wrong = triton.InferInput("title", [1], "BYTES")
        wrong.set_data_from_numpy(np.array([b"x"], dtype=object))
        with pytest.raises(InferenceServerException, match="unknown input 'title'"):
            client.infer("ranker", [wrong])
        ok = client.infer("ranker", text_inputs(PAIRS[:1], binary=False))
        client.close()
        mismatched = httpx.post(
            f"{server.url}/v2/models/ranker/infer",
            json={
                "inputs": [
                    {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]},
                    {"name": "context", "datatype": "BYTES", "shape": [1], "data": ["c"]},
                ]
            },
        )
    assert ok.get_response()["model_name"] == "ranker"
    assert mismatched.status_code == 400 and "'context' has 1 elements but 'text' has 2" in mismatched.json()["error"]
