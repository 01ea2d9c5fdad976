"""Serving backends on a real (tiny) transformer: ONNX Runtime and int8 serve a version only when
their scores match torch's; otherwise the version serves on torch and the refusal is counted."""

from __future__ import annotations

import httpx
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.inference.backends import BackendSpec
from streamtune.inference.backends.acceptance import TOLERANCES
from streamtune.inference.backends.selection import BackendChooser
from streamtune.inference.loading import ForwardPlacement, ModelLoader
from streamtune.metrics import ServingMetrics
from tests.inference.serving import serving, store_of
from tests.support.versions import publish_perturbed_version

CPU = torch.device("cpu")
TEXTS = ["a wonderful film", "an awful film about " + "a long journey " * 8, "x"]
CONTEXTS = ["likes drama", None, "likes comedy, horror"]


def loaded(store: CheckpointStore, model_dir: str, version: int, chooser: BackendChooser | None = None):
    return ModelLoader(store, model_dir, CPU, max_length=64, placement=ForwardPlacement(backends=chooser)).load(version)


def difference(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("kind", "quantize"), [("onnx", "none"), ("onnx", "int8"), ("torch", "int8")], ids=["onnx", "onnx-int8", "int8"]
)
def test_a_faster_backend_serves_a_lora_version_with_torchs_scores(tmp_path, tiny_model_dir, kind, quantize):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, tuning="lora", seed=3)
    metrics = ServingMetrics()
    spec = BackendSpec(kind, quantize)
    served = loaded(store, tiny_model_dir, 1, BackendChooser(spec, metrics, CPU))
    torch_scores = loaded(store, tiny_model_dir, 1).predict(TEXTS, CONTEXTS)
    base_scores = loaded(store, tiny_model_dir, 0).predict(TEXTS, CONTEXTS)

    assert served.backend is not None and served.backend.name == spec.name
    scores = served.predict(TEXTS, CONTEXTS)
    assert difference(scores, torch_scores) <= TOLERANCES[quantize]
    # The LoRA weights are in the exported / quantized model: its scores are the version's,
    # far from the base model's (which the perturbation moves by ~0.15).
    assert difference(scores, base_scores) > 0.05
    measured = metrics.registry.get_sample_value("streamtune_serve_backend_score_difference", {"backend": spec.name})
    assert measured is not None and measured <= TOLERANCES[quantize]


def test_a_backend_outside_its_tolerance_is_refused_and_the_version_serves_on_torch(tmp_path, tiny_model_dir):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, seed=4)
    metrics = ServingMetrics()
    # int8 weights never reproduce fp32 exactly: with no tolerance at all they must be refused.
    chooser = BackendChooser(BackendSpec("torch", "int8", tolerance=0.0), metrics, CPU)
    served = loaded(store, tiny_model_dir, 1, chooser)

    assert served.backend is not None and served.backend.name == "torch"
    assert served.predict(TEXTS, CONTEXTS) == pytest.approx(loaded(store, tiny_model_dir, 1).predict(TEXTS, CONTEXTS))
    labels = {"backend": "torch-int8", "reason": "mismatch"}
    assert metrics.registry.get_sample_value("streamtune_serve_backend_rejections_total", labels) == 1
    assert chooser.last_agreement is not None and chooser.last_agreement.max_difference > 0


def test_a_backend_that_cannot_be_built_leaves_the_version_on_torch(tmp_path, tiny_model_dir):
    metrics = ServingMetrics()
    chooser = BackendChooser(BackendSpec("onnx"), metrics, CPU)
    module = loaded(CheckpointStore(tmp_path), tiny_model_dir, 0).module

    def encode_without_token_types(texts, contexts):  # inputs the ONNX export cannot take
        ids = torch.ones((len(texts), 4), dtype=torch.long)
        return [{"input_ids": ids, "attention_mask": torch.ones_like(ids)}]

    backend = chooser.choose(1, module, encode_without_token_types)
    assert backend.name == "torch"
    labels = {"backend": "onnx", "reason": "error"}
    assert metrics.registry.get_sample_value("streamtune_serve_backend_rejections_total", labels) == 1


def test_backends_other_than_torch_are_refused_at_start_up_on_cuda():
    with pytest.raises(ConfigurationError, match="CPU only"):
        BackendChooser(BackendSpec("onnx"), ServingMetrics(), torch.device("cuda"))


def test_settings_name_the_backend_and_refuse_unknown_ones(monkeypatch):
    monkeypatch.setenv("STREAMTUNE_SERVE_BACKEND", "onnx")
    monkeypatch.setenv("STREAMTUNE_SERVE_QUANTIZE", "int8")
    settings = Settings(_env_file=None)
    assert BackendSpec(settings.serve_backend, settings.serve_quantize).name == "onnx-int8"
    monkeypatch.setenv("STREAMTUNE_SERVE_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="serve_backend"):
        Settings(_env_file=None)


def test_the_server_answers_over_http_from_the_onnx_backend(settings):
    publish_perturbed_version(store_of(settings), settings.base_model, seed=5)
    pairs = list(zip(TEXTS, CONTEXTS, strict=True))
    with serving(settings, serve_backend="onnx") as server:
        response = httpx.post(
            f"{server.url}/v1/predict", json={"instances": [{"text": t, "context": c} for t, c in pairs]}
        )
        refused = server.metric("streamtune_serve_backend_rejections_total", backend="onnx", reason="mismatch")
        measured = server.metric("streamtune_serve_backend_score_difference", backend="onnx")
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == 1
    reference = ModelLoader(store_of(settings), settings.base_model, CPU, settings.max_length).load(1)
    scores = [p["score"] for p in response.json()["predictions"]]
    assert scores == pytest.approx(reference.predict(TEXTS, CONTEXTS), abs=TOLERANCES["none"])
    assert refused == 0 and 0 <= measured <= TOLERANCES["none"]


def test_a_swap_back_reuses_the_versions_export(tmp_path, tiny_model_dir):
    store = CheckpointStore(tmp_path)
    for seed in (6, 7, 8):
        publish_perturbed_version(store, tiny_model_dir, seed=seed)
    chooser = BackendChooser(BackendSpec("onnx", "int8"), ServingMetrics(), CPU)
    loader = ModelLoader(store, tiny_model_dir, CPU, max_length=64, placement=ForwardPlacement(backends=chooser))
    first, second = loader.load(1), loader.load(2)
    again = loader.load(1)  # a pin back to the previous version
    assert chooser.builds == 2 and again.backend is first.backend
    assert again.predict(TEXTS, CONTEXTS) == pytest.approx(first.predict(TEXTS, CONTEXTS), abs=1e-7)
    loader.load(3)  # keeps the two most recently served: 1 and 3
    loader.load(1)
    assert chooser.builds == 3
    loader.load(2)  # served longest ago: built again
    assert chooser.builds == 4 and second.backend is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_bf16_scores_match_the_cpu_ones(tmp_path, tiny_model_dir):
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, seed=9)
    cuda = torch.device("cuda")
    on_cuda = ForwardPlacement(backends=BackendChooser(BackendSpec(), ServingMetrics(), cuda))
    on_gpu = ModelLoader(store, tiny_model_dir, cuda, max_length=64, placement=on_cuda)
    gpu_scores = on_gpu.load(1).predict(TEXTS, CONTEXTS)
    assert difference(gpu_scores, loaded(store, tiny_model_dir, 1).predict(TEXTS, CONTEXTS)) <= 0.02
