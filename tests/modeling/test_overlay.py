"""Versions as overlays on shared base weights: same numbers as PEFT's merge, base never written."""

from __future__ import annotations

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import ModelLoadError
from streamtune.modeling.base import TuningSpec, load_base_model, wrap_for_tuning
from streamtune.modeling.overlay import PEFT_PREFIX, full_tensors, merged_lora_tensors, overlay_module
from streamtune.modeling.weights import apply_state, load_state
from tests.support.versions import publish_perturbed_version


@pytest.fixture
def base(tiny_model_dir):
    return load_base_model(tiny_model_dir).eval().requires_grad_(False)


def test_lora_overlay_equals_peft_merge_and_shares_untouched_tensors(tmp_path, tiny_model_dir, base):
    store = CheckpointStore(tmp_path)
    manifest = publish_perturbed_version(store, tiny_model_dir, tuning="lora", seed=3)
    spec = TuningSpec.from_dict(manifest.tuning)
    adapter = load_state(store.path_of(1), "lora")
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}

    overlay = overlay_module(base, merged_lora_tensors(base, adapter, spec.lora_alpha, spec.lora_r))

    reference = wrap_for_tuning(load_base_model(tiny_model_dir), spec)
    apply_state(reference, adapter, "lora")
    reference = reference.merge_and_unload()
    expected = reference.state_dict()
    for name, tensor in overlay.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6, msg=name)
    changed = {n for n, t in overlay.named_parameters() if t is not dict(base.named_parameters())[n]}
    assert changed and all(".query." in n or ".value." in n or n.startswith("classifier.") for n in changed)
    for name, tensor in base.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} of the base model was written"


def test_full_overlay_replaces_every_tensor_and_checks_coverage(tmp_path, tiny_model_dir, base):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, tuning="full", seed=4)
    state = load_state(store.path_of(1), "full")
    overlay = overlay_module(base, full_tensors(base, state))
    for name, tensor in overlay.state_dict().items():
        assert torch.equal(tensor, state[name])
    incomplete = dict(state)
    incomplete.pop("classifier.weight")
    with pytest.raises(ModelLoadError, match=r"lack tensors.*classifier\.weight"):
        full_tensors(base, incomplete)


@pytest.mark.parametrize(
    ("key", "shape", "message"),
    [
        ("bert.encoder.layer.0.attention.self.query.lora_A.weight", (8, 32), "not a PEFT state dict key"),
        (PEFT_PREFIX + "bert.embeddings.word_embeddings.lora_embedding_A", (8, 32), "not supported"),
        (PEFT_PREFIX + "bert.encoder.layer.0.attention.self.query.lora_A.weight", (8, 31), "shape"),
        (PEFT_PREFIX + "bert.encoder.layer.0.attention.nope.lora_A.weight", (8, 32), "does not match"),
        (PEFT_PREFIX + "classifier.weight", (2, 32), "shape"),
        (PEFT_PREFIX + "classifier.extra", (1,), "lacks"),
    ],
)
def test_adapters_that_do_not_fit_the_base_model_are_refused(base, key, shape, message):
    adapter = {key: torch.zeros(shape)}
    if ".lora_A." in key:
        adapter[key.replace(".lora_A.", ".lora_B.")] = torch.zeros(32, 8)
    with pytest.raises(ModelLoadError, match=message):
        overlay_module(base, merged_lora_tensors(base, adapter, lora_alpha=16, lora_r=8))
