"""The torch backend on CPU runs its linear layers on oneDNN (packed fp32 weights) and serves a
version only when its scores match the stock module's; base weights are packed once for all
versions."""

from __future__ import annotations

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.inference.backends import BackendSpec
from streamtune.inference.backends.acceptance import TOLERANCES
from streamtune.inference.backends.selection import BackendChooser
from streamtune.inference.loading import ForwardPlacement, ModelLoader
from streamtune.metrics import ServingMetrics
from streamtune.modeling.onednn import OneDnnLinear, PackedWeights, onednn_available, with_onednn_linears
from tests.support.versions import publish_perturbed_version

CPU = torch.device("cpu")
TEXTS = ["a wonderful film", "an awful film about " + "a long journey " * 8, "x"]
CONTEXTS = ["likes drama", None, "likes comedy, horror"]

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


def loader(store: CheckpointStore, model_dir: str, chooser: BackendChooser | None = None) -> ModelLoader:
    return ModelLoader(store, model_dir, CPU, max_length=64, placement=ForwardPlacement(backends=chooser))


def linears(module: torch.nn.Module, kind: type) -> int:
    return sum(type(layer) is kind for layer in module.modules())


def test_plain_torch_serves_a_lora_version_on_onednn_with_the_stock_scores(tmp_path, tiny_model_dir):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, tuning="lora", seed=3)
    metrics = ServingMetrics()
    served = loader(store, tiny_model_dir, BackendChooser(BackendSpec(), metrics, CPU)).load(1)
    stock = loader(store, tiny_model_dir).load(1)
    base = loader(store, tiny_model_dir).load(0)

    module = served.backend.module
    assert linears(module, torch.nn.Linear) == 0
    assert linears(module, OneDnnLinear) == linears(stock.module, torch.nn.Linear)
    scores = served.predict(TEXTS, CONTEXTS)
    assert scores == pytest.approx(stock.predict(TEXTS, CONTEXTS), abs=TOLERANCES["none"])
    # The merged LoRA weights are what oneDNN packed: the scores are the version's, not the base's.
    assert max(abs(a - b) for a, b in zip(scores, base.predict(TEXTS, CONTEXTS), strict=True)) > 0.05
    measured = metrics.registry.get_sample_value("streamtune_serve_backend_score_difference", {"backend": "torch"})
    assert measured is not None and measured <= TOLERANCES["none"]


def test_the_stock_module_is_left_as_it_was_and_shares_its_tensors():
    stock = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1)).eval()
    packed = PackedWeights()
    fast = with_onednn_linears(stock, packed)
    inputs = torch.randn(5, 3, 8)

    assert linears(stock, torch.nn.Linear) == 2 and linears(fast, OneDnnLinear) == 2
    assert fast[0].weight is stock[0].weight and len(packed) == 2
    with torch.inference_mode():
        assert torch.allclose(fast(inputs), stock(inputs), atol=1e-5)


def test_versions_share_the_base_models_packed_weights(tmp_path, tiny_model_dir):
    store = CheckpointStore(tmp_path)
    for seed in (6, 7):
        publish_perturbed_version(store, tiny_model_dir, tuning="lora", seed=seed)
    chooser = BackendChooser(BackendSpec(), ServingMetrics(), CPU)
    versions = loader(store, tiny_model_dir, chooser)
    base = versions.load(0)
    base_packed = len(chooser.packed)
    versions.load(1)
    one_version = len(chooser.packed) - base_packed

    assert base_packed == linears(base.module, torch.nn.Linear)
    # A LoRA version packs the projections its adapters changed and the head, not every layer.
    assert 0 < one_version < base_packed
    versions.load(2)
    assert len(chooser.packed) <= base_packed + 2 * one_version


def test_with_onednn_off_plain_torch_serves_the_stock_module(tmp_path, tiny_model_dir):
    chooser = BackendChooser(BackendSpec(), ServingMetrics(), CPU, onednn=False)
    served = loader(CheckpointStore(tmp_path), tiny_model_dir, chooser).load(0)
    assert served.backend.module is served.module and chooser.builds == 0
