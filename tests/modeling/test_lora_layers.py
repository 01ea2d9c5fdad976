"""LoRA on the top layers only: fewer adapted layers, no gradient below them, served exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError
from streamtune.inference.loading import ModelLoader
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from tests.support.versions import perturbed_model, publish_perturbed_version

TEXTS = ["a wonderful film", "an awful film", "something else entirely"]
CONTEXTS = [None, "likes drama", None]


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[parts.index("layer") + 1]) if "layer" in parts else None


def test_only_the_top_layers_are_adapted_and_get_gradients(tiny_model_dir):
    base = load_base_model(tiny_model_dir)
    top = base.config.num_hidden_layers - 1
    model = wrap_for_tuning(base, TuningSpec(tuning="lora", lora_layers=1))
    adapted = {layer_of(name) for name, _ in model.named_parameters() if "lora_" in name}
    assert adapted == {top}

    inputs = encode_pairs(load_tokenizer(tiny_model_dir), TEXTS, CONTEXTS, 32)
    model(**inputs).logits.sum().backward()
    with_gradient = {name for name, parameter in model.named_parameters() if parameter.grad is not None}
    assert with_gradient and all(layer_of(name) in (top, None) for name in with_gradient)
    assert any("classifier" in name for name in with_gradient)


def test_more_layers_than_the_model_has_means_all(tiny_model_dir):
    model = wrap_for_tuning(load_base_model(tiny_model_dir), TuningSpec(tuning="lora", lora_layers=99))
    layers = {layer_of(name) for name, _ in model.named_parameters() if "lora_" in name}
    assert layers == set(range(model.config.num_hidden_layers))


def test_the_spec_round_trips_and_old_manifests_mean_all_layers():
    spec = TuningSpec(tuning="lora", lora_layers=2)
    assert TuningSpec.from_dict(spec.to_dict()) == spec
    assert TuningSpec.from_dict({"tuning": "lora", "lora_r": 8, "lora_alpha": 16}).lora_layers is None


def test_a_top_layer_version_is_served_with_the_scores_of_the_trained_model(tmp_path, tiny_model_dir):
    spec = TuningSpec(tuning="lora", lora_layers=1, lora_dropout=0.0)
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, seed=3, tuning=spec)
    served = ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32).load(1)
    assert served.manifest["tuning"]["lora_layers"] == 1

    trained = perturbed_model(tiny_model_dir, spec, seed=3).eval()
    with torch.no_grad():
        logits = trained(**encode_pairs(load_tokenizer(tiny_model_dir), TEXTS, CONTEXTS, 32)).logits.squeeze(-1)
    assert served.predict(TEXTS, CONTEXTS) == pytest.approx(torch.sigmoid(logits).tolist(), abs=1e-5)


@pytest.mark.parametrize("layers", [0, -1, True, "2", 1.5])
def test_a_manifest_with_an_invalid_layer_count_is_refused(tmp_path, tiny_model_dir, layers):
    store = CheckpointStore(tmp_path)
    manifest = publish_perturbed_version(store, tiny_model_dir)
    broken = dataclasses.replace(manifest, tuning={**manifest.tuning, "lora_layers": layers})
    with pytest.raises(CheckpointError, match="LoRA layer count"):
        broken.check()
