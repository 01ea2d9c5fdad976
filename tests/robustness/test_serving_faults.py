"""The inference server under store faults and crashes: a bad version is refused with a logged
reason and a counter while the old one keeps answering; a server killed in the middle of a swap
comes back serving one consistent version."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.inference.loading import ModelLoader
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess
from tests.inference.serving import serving
from tests.support.versions import publish_perturbed_version

pytestmark = pytest.mark.slow

WEIGHTS = "adapter.safetensors"
INSTANCES = [{"text": "a wonderful film", "context": "likes drama"}, {"text": "an awful film"}]


def predict(url: str) -> httpx.Response:
    response = httpx.post(f"{url}/v1/predict", json={"instances": INSTANCES}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def reference_scores(store: CheckpointStore, base_model: str, version: int) -> list[float]:
    loader = ModelLoader(store, base_model, torch.device("cpu"), max_length=32)
    served = loader.load(version)
    return served.predict([i["text"] for i in INSTANCES], [i.get("context") for i in INSTANCES])


def stage_damaged_copy(store: CheckpointStore, damage: Callable[[Path], None]) -> int:
    """Copy version 1 under the next number, damage the copy, then point LATEST at it: the
    server only ever sees the damaged version (never a good one that is damaged later)."""
    version = max(int(entry.name[1:]) for entry in store.root.glob("v[0-9]*")) + 1
    staging = store.root / f".tmp-staging-{version}"
    shutil.copytree(store.path_of(1), staging)
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["version"], manifest["parent_version"] = version, 1
    (staging / "manifest.json").write_text(json.dumps(manifest))
    damage(staging)
    os.rename(staging, store.path_of(version))
    (store.root / "LATEST").write_text(f"{version}\n")
    return version


def edit_manifest(directory: Path, change: Callable[[dict], None]) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def truncate_weights(directory: Path) -> None:
    path = directory / WEIGHTS
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


class _Planted:
    """Unpickling this creates a file: evidence that someone loaded a pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def pickle_instead_of_safetensors(marker: Path) -> Callable[[Path], None]:
    """Weights replaced by a pickle, with the manifest updated to match it (hash and size)."""

    def damage(directory: Path) -> None:
        payload = pickle.dumps({"weight": _Planted(str(marker))})
        (directory / WEIGHTS).write_bytes(payload)
        entry = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
        edit_manifest(directory, lambda m: m["files"].update({WEIGHTS: entry}))

    return damage


def test_bad_versions_are_refused_and_the_old_one_keeps_answering(settings, tmp_path, caplog):
    store = CheckpointStore(settings.checkpoint_dir)
    publish_perturbed_version(store, settings.base_model, seed=1)
    expected = reference_scores(store, settings.base_model, 1)
    marker = tmp_path / "pickle-was-loaded"
    faults = {
        "truncated weights": (truncate_weights, "bytes, manifest says"),
        "hash mismatch": (
            lambda d: edit_manifest(d, lambda m: m["files"][WEIGHTS].update(sha256="ab" * 32)),
            "does not match its sha256",
        ),
        "missing file": (lambda d: (d / WEIGHTS).unlink(), "is missing"),
        "path outside the store": (
            lambda d: edit_manifest(d, lambda m: m.update(files={"../v00000001/" + WEIGHTS: m["files"][WEIGHTS]})),
            "unsafe file",
        ),
        "pickle payload": (pickle_instead_of_safetensors(marker), "not a valid safetensors file"),
    }
    caplog.set_level(logging.INFO, logger="streamtune")
    with serving(settings, store_poll_seconds=0.2) as server:
        assert predict(server.url).headers["X-Model-Version"] == "1"
        for refusals, (name, (damage, reason)) in enumerate(faults.items(), start=1):
            version = stage_damaged_copy(store, damage)
            wait_for(
                lambda count=refusals: server.metric("streamtune_model_load_failures_total", reason="invalid") >= count,
                30,
                what=f"refusal of the {name} version",
            )
            answer = predict(server.url)
            assert answer.headers["X-Model-Version"] == "1", name
            assert [p["score"] for p in answer.json()["predictions"]] == pytest.approx(expected, abs=1e-5)
            messages = [record.getMessage() for record in caplog.records]
            refused = [message for message in messages if message.startswith(f"refused version {version} ")]
            assert refused and reason in refused[0], (name, refused)
        assert not marker.exists(), "a pickle was unpickled"

        # Entries that are not versions are never taken for one, whatever LATEST says.
        (store.root / "v00000099").write_text("not a directory")
        os.symlink(store.path_of(1), store.root / "v00000098")
        for pointed in ("99", "98", "../../etc/passwd", "-3", "garbage"):
            (store.root / "LATEST").write_text(pointed)
            assert predict(server.url).headers["X-Model-Version"] == "1"

        # After all that, a good version is still picked up.
        good = publish_perturbed_version(store, settings.base_model, seed=2).version
        wait_for(lambda: predict(server.url).headers["X-Model-Version"] == str(good), 30, what="swap to a good version")
        assert server.metric("streamtune_model_load_failures_total", reason="invalid") >= len(faults)


def test_a_server_killed_mid_swap_restarts_on_a_consistent_version(settings, tmp_path):
    # LATEST is re-read every 0.2 s and a swap of the tiny model takes about 0.1 s: a kill at a
    # random point within 0.45 s of moving LATEST lands inside a load about a third of the time.
    settings = settings.model_copy(update={"store_poll_seconds": 0.2})
    store = CheckpointStore(settings.checkpoint_dir)
    publish_perturbed_version(store, settings.base_model, seed=1)
    url = f"http://127.0.0.1:{settings.http_port}"
    rng = random.Random(7)
    for round_number in range(3):
        server = ServiceProcess("serve", settings, tmp_path / f"server-{round_number}.log")
        try:
            wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 90, what="server ready")
            served = int(predict(url).headers["X-Model-Version"])
            assert served == store.latest_version()  # restarted on what LATEST names
            assert [p["score"] for p in predict(url).json()["predictions"]] == pytest.approx(
                reference_scores(store, settings.base_model, served), abs=1e-5
            )
            # LATEST moves; the server notices within a poll and swaps; kill it somewhere in there.
            publish_perturbed_version(store, settings.base_model, seed=10 + round_number)
            time.sleep(rng.uniform(0.05, 0.45))  # a random point: before, during or after the swap
        finally:
            server.kill()
    final = ServiceProcess("serve", settings, tmp_path / "server-final.log")
    try:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 90, what="server ready")
        answer = predict(url)
        latest = store.latest_version()
        assert answer.headers["X-Model-Version"] == str(latest) == str(answer.json()["model_version"])
        assert [p["score"] for p in answer.json()["predictions"]] == pytest.approx(
            reference_scores(store, settings.base_model, latest), abs=1e-5
        )
        assert httpx.get(f"{url}/v1/model").json()["model_version"] == latest
    finally:
        final.stop()
