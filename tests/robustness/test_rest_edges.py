"""Hostile request bodies the schema-driven fuzzing does not generate: deep nesting, JSON's
non-standard constants, lone surrogates, broken encodings, unicode that is valid but odd. None
may cause a 5xx, and the server keeps answering afterwards. CORS is off unless configured.

(Size limits, content types, admin authentication and a schemathesis run over the OpenAPI
schema are tested in tests/inference.)
"""

from __future__ import annotations

import httpx
import pytest

from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/json"}
DEPTH = 100_000  # 200 KB of brackets: under the body limit, far past any parser's recursion limit

REFUSED_BODIES = {
    "deep arrays": b'{"instances": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "deep objects": b'{"instances": [{"text": "x", "context": ' + b'{"a":' * 40_000 + b"1" + b"}" * 40_000 + b"}]}",
    "deep inside an unknown field": b'{"instances": [{"text": "x"}], "x": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "NaN as text": b'{"instances": [{"text": NaN}]}',
    "Infinity as context": b'{"instances": [{"text": "x", "context": Infinity}]}',
    "NaN as top_k": b'{"candidates": [{"id": "a", "text": "x"}], "top_k": NaN}',
    "lone surrogate in text": b'{"instances": [{"text": "fine \\ud800 then broken"}]}',
    "lone low surrogate in context": b'{"instances": [{"text": "x", "context": "\\udfff"}]}',
    "lone surrogate in a candidate id": b'{"candidates": [{"id": "\\ud83d", "text": "x"}]}',
    "invalid UTF-8": b'{"instances": [{"text": "caf\xe9 \xff\xfe"}]}',
    "truncated UTF-8": b'{"instances": [{"text": "\xe2\x82"}]}',
    "huge integer": b'{"candidates": [{"id": "a", "text": "x"}], "top_k": ' + b"9" * 5000 + b"}",
    "trailing garbage": b'{"instances": [{"text": "x"}]} trailing',
    "not an object": b'[{"text": "x"}]',
}

ACCEPTED_TEXTS = [
    "\U0001f469\u200d\U0001f4bb\U0001f1fa\U0001f1f8",  # ZWJ sequence, flag
    "\u202eright-to-left override\u202c and \u0645\u0631\u062d\u0628\u0627",
    "zero\u200bwidth\u200cjoiners\u200d and a BOM \ufeff",
    "NUL \x00 and controls \x1b\x7f and line separators \u2028\u2029",
    "e\u0301 vs \u00e9, \u0130, \u00df, \ufb01, \U0001d573",
    "noncharacters \ufffe\uffff and the last plane \U0010fffd",
    "\u6f22\u5b57" * 500,
]


def endpoint_of(body: bytes) -> str:
    return "/v1/rank" if body.lstrip().startswith(b'{"candidates"') else "/v1/predict"


@pytest.fixture(scope="module")
def server(tmp_path_factory, kafka_bootstrap, tiny_model_dir):
    from streamtune.config import Settings
    from streamtune.testing.network import free_port

    config = Settings(
        _env_file=None,
        kafka_bootstrap_servers=kafka_bootstrap,
        models_topic="models-rest-edges",
        base_model=tiny_model_dir,
        checkpoint_dir=tmp_path_factory.mktemp("rest-edges") / "checkpoints",
        device="cpu",
        max_length=32,
        http_port=free_port(),
    )
    publish_perturbed_version(store_of(config), tiny_model_dir)
    with serving(config) as running:
        yield running


@pytest.mark.parametrize("name", list(REFUSED_BODIES))
def test_hostile_bodies_are_refused_with_a_4xx(server, name):
    body = REFUSED_BODIES[name]
    response = httpx.post(f"{server.url}{endpoint_of(body)}", content=body, headers=JSON, timeout=30)
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
    response.json()  # the refusal itself is valid JSON
    assert httpx.post(f"{server.url}/v1/predict", json={"instances": [{"text": "still here"}]}).status_code == 200


def test_odd_but_valid_unicode_is_scored(server):
    instances = [{"text": text, "context": text[::-1]} for text in ACCEPTED_TEXTS]
    response = httpx.post(f"{server.url}/v1/predict", json={"instances": instances}, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(ACCEPTED_TEXTS)
    ranked = httpx.post(
        f"{server.url}/v1/rank",
        json={"context": ACCEPTED_TEXTS[1], "candidates": [{"id": t[:20], "text": t} for t in ACCEPTED_TEXTS[:5]]},
        timeout=30,
    )
    assert ranked.status_code == 200, ranked.text
    assert {c["id"] for c in ranked.json()["candidates"]} == {t[:20] for t in ACCEPTED_TEXTS[:5]}


def test_cors_is_off_by_default(server):
    origin = {"Origin": "https://elsewhere.example"}
    preflight = httpx.options(f"{server.url}/v1/predict", headers=origin | {"Access-Control-Request-Method": "POST"})
    simple = httpx.post(f"{server.url}/v1/predict", json={"instances": [{"text": "x"}]}, headers=origin)
    assert "access-control-allow-origin" not in preflight.headers
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_answers_only_the_configured_origins(settings):
    publish_perturbed_version(store_of(settings), settings.base_model)
    allowed, other = "https://app.example", "https://elsewhere.example"
    with serving(settings, cors_origins=[allowed]) as running:
        url = f"{running.url}/v1/predict"
        preflight = httpx.options(url, headers={"Origin": allowed, "Access-Control-Request-Method": "POST"})
        refused = httpx.options(url, headers={"Origin": other, "Access-Control-Request-Method": "POST"})
        simple = httpx.post(url, json={"instances": [{"text": "x"}]}, headers={"Origin": allowed})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-credentials" not in simple.headers
