"""The hybrid serving benchmark runs in its quick mode and compares known pairs with the naive server."""

from __future__ import annotations

import json

import pytest

from benchmarks import run_all, serving_hybrid

pytestmark = pytest.mark.slow


def test_serving_hybrid_reports_known_pairs_against_the_naive_server(tmp_path):
    out = tmp_path / "serving_hybrid.json"
    result = serving_hybrid.main(["--quick", "--out", str(out)])["result"]
    assert result["all_pairs_known"] is True  # every measured request hit known user and item rows
    hybrid = result["streamtune-hybrid"]
    assert hybrid["requests"] > 0 and hybrid["errors"] == 0
    baseline = result[result["ratios"]["baseline"]]
    ratio = hybrid["throughput_rps"] / baseline["throughput_rps"]
    assert result["ratios"]["throughput_vs_naive_c32"] == pytest.approx(ratio)
    document = json.loads(out.read_text())
    assert "goal >= 20" in document["table"]
    assert run_all.serving_hybrid_headline(document)["all_pairs_known"] is True
