"""The admin API: bearer-token guard, pin/unpin per replica, the versions listing."""

from __future__ import annotations

import logging

import httpx

from streamtune.testing.network import wait_for
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

TOKEN = "admin-token-for-tests-0123"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ENDPOINTS = [("POST", "/v1/admin/pin", {"version": 1}), ("POST", "/v1/admin/unpin", None), ("GET", "/v1/models", None)]


def call(server, method, path, body=None, headers=None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=30)


def test_admin_endpoints_are_closed_without_a_configured_token(settings):
    publish_perturbed_version(store_of(settings), settings.base_model)
    with serving(settings, public_model_info=False) as server:
        answers = [call(server, method, path, body, ADMIN) for method, path, body in ENDPOINTS]
    assert [answer.status_code for answer in answers] == [403, 403, 403]
    assert "STREAMTUNE_ADMIN_TOKEN" in answers[0].json()["detail"]


def test_a_missing_token_is_401_a_wrong_one_403_and_the_token_is_never_logged(settings, caplog):
    publish_perturbed_version(store_of(settings), settings.base_model)
    caplog.set_level(logging.DEBUG)
    with serving(settings, admin_token=TOKEN, public_model_info=False) as server:
        for method, path, body in ENDPOINTS:
            missing = call(server, method, path, body)
            assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer", path
            basic = call(server, method, path, body, {"Authorization": f"Basic {TOKEN}"})
            assert basic.status_code == 401, path
            wrong = call(server, method, path, body, {"Authorization": f"Bearer {TOKEN[:-1]}x"})
            assert wrong.status_code == 403, path
            assert call(server, method, path, body, ADMIN).status_code == 200, path
    assert TOKEN not in caplog.text


def test_pin_serves_a_version_until_unpinned_and_refusals_keep_the_old_one(settings):
    store = store_of(settings)
    for seed in (1, 2):
        publish_perturbed_version(store, settings.base_model, seed=seed)
    with serving(settings, admin_token=TOKEN) as server:
        assert call(server, "GET", "/v1/model").json()["model_version"] == 2

        pinned = call(server, "POST", "/v1/admin/pin", {"version": 1}, ADMIN)
        assert pinned.json() == {"model_version": 1, "pinned": 1}
        predicted = call(server, "POST", "/v1/predict", {"instances": [{"text": "x"}]})
        assert predicted.headers["X-Model-Version"] == "1"
        assert call(server, "GET", "/v1/model").json()["pinned"] == 1
        assert server.metric("streamtune_pinned_model_version") == 1

        absent = call(server, "POST", "/v1/admin/pin", {"version": 7}, ADMIN)
        assert absent.status_code == 404 and "version 7 does not exist" in absent.json()["detail"]

        publish_perturbed_version(store, settings.base_model, seed=3)  # LATEST moves to 3...
        weights = store.path_of(3) / "adapter.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # ...whose weights are corrupt
        refused = call(server, "POST", "/v1/admin/pin", {"version": 3}, ADMIN)
        assert refused.status_code == 409
        assert "sha256" in refused.json()["detail"] and "still serving version 1" in refused.json()["detail"]
        assert call(server, "GET", "/v1/model").json() | {"manifest": None} == {
            "model_version": 1,
            "manifest": None,
            "pinned": 1,
            "trained": True,
        }

        publish_perturbed_version(store, settings.base_model, seed=4)
        unpinned = call(server, "POST", "/v1/admin/unpin", None, ADMIN)
        assert unpinned.json() == {"model_version": 4, "pinned": None}
        assert server.metric("streamtune_pinned_model_version") == -1
        base = call(server, "POST", "/v1/admin/pin", {"version": 0}, ADMIN)
        assert base.json() == {"model_version": 0, "pinned": 0}
        listing = call(server, "GET", "/v1/models", None, ADMIN).json()
    assert [entry["version"] for entry in listing["versions"]] == [1, 2, 3, 4]
    assert all(entry["manifest"]["version"] == entry["version"] for entry in listing["versions"])
    assert "metrics" in listing["versions"][0]["manifest"]
    assert listing | {"versions": None, "last_swap": None} == {
        "serving": 0,
        "pinned": 0,
        "latest": 4,
        "last_swap": None,
        "versions": None,
    }
    assert listing["last_swap"]["version"] == 0 and listing["last_swap"]["memory_peak_bytes"] > 0


def test_the_pin_holds_while_latest_moves(settings):
    store = store_of(settings)
    publish_perturbed_version(store, settings.base_model, seed=1)
    with serving(settings, admin_token=TOKEN) as server:
        call(server, "POST", "/v1/admin/pin", {"version": 0}, ADMIN)
        publish_perturbed_version(store, settings.base_model, seed=2)
        rounds = server.follower.rounds
        wait_for(lambda: server.follower.rounds >= rounds + 2, 10, what="two store polls")  # saw LATEST=2
        assert call(server, "GET", "/v1/model").json()["model_version"] == 0


def test_the_listing_is_public_by_default_but_changes_still_need_the_token(settings):
    publish_perturbed_version(store_of(settings), settings.base_model)
    with serving(settings, admin_token=TOKEN) as server:
        listing = call(server, "GET", "/v1/models")
        pin = call(server, "POST", "/v1/admin/pin", {"version": 1})
        unpin = call(server, "POST", "/v1/admin/unpin")
    assert listing.status_code == 200 and [v["version"] for v in listing.json()["versions"]] == [1]
    assert (pin.status_code, unpin.status_code) == (401, 401)
