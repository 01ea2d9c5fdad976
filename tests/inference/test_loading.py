"""Loading real versions of a (tiny) transformer: verified, merged, warmed up — or refused."""

from __future__ import annotations

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import ModelLoadError
from streamtune.inference.loading import ModelLoader
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics
from tests.support.versions import publish_perturbed_version

TEXTS = ["a wonderful film", "an awful film", "something else entirely"]


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_loads_a_version_with_its_weights(tmp_path, tiny_model_dir, tuning):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, tuning=tuning)
    loader = ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32)
    base, version = loader.load(0), loader.load(1)
    assert version.version == 1 and version.manifest["tuning"]["tuning"] == tuning
    base_scores = base.predict(TEXTS, [None, "ctx", None])
    scores = version.predict(TEXTS, [None, "ctx", None])
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores != pytest.approx(base_scores, abs=1e-4)  # the version's weights are in use
    # The template stays untouched: loading again gives the base model's scores.
    assert loader.load(0).predict(TEXTS, [None, "ctx", None]) == pytest.approx(base_scores, abs=1e-6)


def test_server_refuses_a_version_whose_hash_does_not_match(tmp_path, tiny_model_dir):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, seed=1)
    publish_perturbed_version(store, tiny_model_dir, seed=2)
    weights = store.path_of(2) / "adapter.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a tensor: same size, valid header, wrong content
    weights.write_bytes(bytes(data))

    loader = ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32)
    with pytest.raises(ModelLoadError, match="sha256"):
        loader.load(2)
    metrics = ServingMetrics()
    slot = ModelSlot(loader.load, metrics)
    assert slot.ensure(1) is True
    assert slot.ensure(2) is False
    assert slot.current.version == 1
    assert metrics.registry.get_sample_value("streamtune_model_load_failures_total", {"reason": "invalid"}) == 1
