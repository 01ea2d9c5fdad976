"""A hybrid model served over real HTTP: ids in, known-flags out, deltas followed, text fallback.

The versions are built with the hybrid core directly (no trainer) in the store the server
follows; user ids are pseudonymised with the server's key, as the trainer does.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.inference.server import build_app
from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder
from streamtune.modeling.hybrid.versions import export_delta, export_snapshot
from streamtune.privacy.pseudonyms import Pseudonymiser
from streamtune.testing.hybrid_store import publish_hybrid
from streamtune.testing.network import wait_for
from tests.inference.serving import serving
from tests.modeling.hybrid.streams import taste_stream

KEY = "a test pseudonymisation key, 32+"


def numbered(events: list[dict]) -> list[dict]:
    """Events with integer-like user ids ("7"), pseudonymised as the trainer keeps them."""
    pseudonymiser = Pseudonymiser(KEY.encode())
    return [{**e, "user_id": pseudonymiser.pseudonym(e["user_id"][1:])} for e in events]


@pytest.fixture
def trained(settings: Settings, tiny_model_dir: str) -> tuple[HybridLearner, CheckpointStore]:
    encoder = SentenceEncoder(tiny_model_dir)
    config = HybridConfig(text_dim=encoder.dim, user_rows=64, item_rows=64, sparse_lr=0.1)
    learner = HybridLearner(HybridModel(config, TextEmbedder(encoder)))
    learner.learn(numbered(taste_stream(400, users=20, items=10)))
    store = CheckpointStore(settings.checkpoint_dir)
    publish_hybrid(store, export_snapshot(learner.model))
    return learner, store


def expected(learner: HybridLearner, user: str | None, item: str | None, text: str = "") -> float:
    event = {"user_id": user, "item_id": item, "text": text, "context": ""}
    if user is not None:
        event = numbered([{**event, "user_id": f"u{user}"}])[0]
    return float(learner.predict([event]).probabilities[0])


def test_ids_are_scored_with_known_flags_and_unknown_ids_fall_back_to_text(settings, trained):
    learner, _ = trained
    with serving(settings, model_kind="hybrid", pseudonymise_key=KEY) as server:
        instances = [
            {"user_id": 3, "item_id": "i4", "text": "Film 4 | Horror"},  # an integer id, as events may carry it
            {"user_id": "nobody", "item_id": "no such item", "text": "Film 4 | Horror"},
            {"text": "Film 4 | Horror"},
        ]
        answer = httpx.post(f"{server.url}/v1/predict", json={"instances": instances}).json()
    known, unknown, anonymous = answer["predictions"]
    assert (known["user_known"], known["item_known"]) == (True, True)
    assert (unknown["user_known"], unknown["item_known"]) == (False, False)
    assert (anonymous["user_known"], anonymous["item_known"]) == (False, False)
    assert known["score"] == pytest.approx(expected(learner, "3", "i4", "Film 4 | Horror"), rel=1e-5)
    # Unknown ids score exactly as no ids: the text terms and the rate prior alone.
    assert unknown["score"] == pytest.approx(anonymous["score"], rel=1e-6)
    assert unknown["score"] == pytest.approx(expected(learner, None, None, "Film 4 | Horror"), rel=1e-5)
    assert abs(known["score"] - unknown["score"]) > 1e-3


def test_rank_orders_item_ids_for_one_user_with_remembered_texts(settings, trained):
    learner, _ = trained
    with serving(settings, model_kind="hybrid", pseudonymise_key=KEY) as server:
        # The server learns item 2's text from a request that carries it.
        httpx.post(f"{server.url}/v1/predict", json={"instances": [{"item_id": 2, "text": "Film 2 | Horror"}]})
        candidates = [{"id": f"i{item}"} for item in range(10)] + [{"id": 2}, {"id": "new", "text": "Film 99 | Comedy"}]
        answer = httpx.post(f"{server.url}/v1/rank", json={"user_id": "5", "candidates": candidates}).json()
    ranked = answer["candidates"]
    assert len(ranked) == 12
    scores = {str(c["id"]) + type(c["id"]).__name__: c["score"] for c in ranked}
    for item in range(10):  # never sent with a text here: ID rows and the prior alone
        assert scores[f"i{item}str"] == pytest.approx(expected(learner, "5", f"i{item}"), rel=1e-5)
    assert scores["2int"] == pytest.approx(expected(learner, "5", "2", "Film 2 | Horror"), rel=1e-5)
    assert scores["newstr"] == pytest.approx(expected(learner, "5", "new", "Film 99 | Comedy"), rel=1e-5)
    assert [c["score"] for c in ranked] == sorted((c["score"] for c in ranked), reverse=True)
    flags = {str(c["id"]): (c["user_known"], c["item_known"]) for c in ranked}
    assert flags["i3"] == (True, True) and flags["new"] == (True, False)


def test_the_server_follows_deltas_and_scores_as_the_trainer(settings, trained):
    learner, store = trained
    rows = [{"user_id": str(user), "item_id": f"i{item}"} for user in range(20) for item in (0, 1)]
    with serving(settings, model_kind="hybrid", pseudonymise_key=KEY) as server:
        for seed in (1, 2, 3):
            learner.learn(numbered(taste_stream(100, users=30, items=12, seed=seed)))  # new users and items too
            publish_hybrid(store, export_delta(learner.model))
        wait_for(lambda: httpx.get(f"{server.url}/v1/model").json()["model_version"] == 4, 30, what="version 4")
        model = httpx.get(f"{server.url}/v1/model").json()
        answer = httpx.post(f"{server.url}/v1/predict", json={"instances": rows}).json()
        oip = httpx.post(
            f"{server.url}/v2/models/{settings.model_name}/infer",
            json={
                "inputs": [
                    {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Film 4 | Horror"]},
                    {"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["3"]},
                    {"name": "item_id", "datatype": "BYTES", "shape": [1], "data": ["i4"]},
                ]
            },
        ).json()
    assert model["manifest"]["model_kind"] == "hybrid" and model["manifest"]["delta_of"] == 3
    events = numbered([{**row, "user_id": f"u{row['user_id']}", "text": ""} for row in rows])
    np.testing.assert_allclose(
        [p["score"] for p in answer["predictions"]], learner.predict(events).probabilities, rtol=1e-5
    )
    assert oip["outputs"][0]["data"][0] == pytest.approx(expected(learner, "3", "i4", "Film 4 | Horror"), rel=1e-5)
    assert all(p["user_known"] and p["item_known"] for p in answer["predictions"])


def test_a_text_model_server_answers_without_known_flags(settings):
    with serving(settings) as server:  # the text family, version 0
        answer = httpx.post(
            f"{server.url}/v1/predict", json={"instances": [{"text": "a film", "user_id": 1, "item_id": 2}]}
        ).json()
        missing_text = httpx.post(f"{server.url}/v1/predict", json={"instances": [{"item_id": 2}]})
    assert set(answer["predictions"][0]) == {"score"}
    assert missing_text.status_code == 422


def test_a_hybrid_server_on_object_storage_needs_the_trainers_key(settings):
    hybrid = Settings.model_validate(
        settings.model_dump() | {"model_kind": "hybrid", "checkpoint_uri": "s3://bucket/x"}
    )
    with pytest.raises(ConfigurationError, match="STREAMTUNE_PSEUDONYMISE_KEY"):
        build_app(hybrid)
