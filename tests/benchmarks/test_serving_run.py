"""The serving benchmark runs on the tiny model and reports every backend against the naive server."""

from __future__ import annotations

import json

import pytest

from benchmarks import run_all, serving

pytestmark = pytest.mark.slow


def test_serving_reports_backends_swaps_and_ratios(tmp_path):
    out = tmp_path / "serving.json"
    arguments = ["--models", "tiny", "--repeats", "1", "--seconds", "0.5", "--swap-seconds", "2.5"]
    variants = "streamtune-stock,streamtune-onnx-int8"
    payload = serving.main([*arguments, "--variants", variants, "--out", str(out)])
    tiny = payload["results"]["tiny"]
    assert set(tiny["backend_ratios"]) == {"streamtune", "streamtune-stock", "streamtune-onnx-int8"}
    assert tiny["streamtune"][32]["requests"] > 0 and tiny["streamtune-onnx-int8"][32]["errors"] == 0
    onnx = tiny["backends"]["streamtune-onnx-int8"]
    # Accepted at load: the int8 ONNX model's scores are within its tolerance of torch's.
    assert onnx["backend"] == "onnx-int8" and onnx["refused"] == 0
    assert onnx["score_difference"] is not None and 0 <= onnx["score_difference"] <= onnx["tolerance"]
    # Torch on oneDNN was checked against the stock module; the stock path is the reference.
    torch_onednn = tiny["backends"]["streamtune"]
    assert torch_onednn["refused"] == 0 and 0 <= torch_onednn["score_difference"] <= torch_onednn["tolerance"]
    assert tiny["backends"]["streamtune-stock"]["score_difference"] is None
    assert tiny["swaps"]["swaps"] >= 1 and tiny["ratios"]["errors"] == 0
    document = json.loads(out.read_text())
    assert "streamtune-onnx-int8" in document["table"]
    headline = run_all.serving_headline(document)
    assert headline["tiny_streamtune-onnx-int8_score_difference"] == onnx["score_difference"]
    assert headline["tiny_errors"] == 0
