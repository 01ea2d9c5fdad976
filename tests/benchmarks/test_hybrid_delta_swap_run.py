"""The hybrid delta benchmark runs end to end in its tiny mode and reports what it promises."""

from __future__ import annotations

import json

import pytest

from benchmarks import hybrid_delta_swap, run_all

pytestmark = pytest.mark.slow


def test_hybrid_delta_swap(tiny_model_dir, tmp_path):
    out = tmp_path / "hybrid_delta_swap.json"
    payload = hybrid_delta_swap.main(["--quick", "--base-model", tiny_model_dir, "--out", str(out)])
    delta, snapshot = payload["results"]["delta"], payload["results"]["snapshot"]
    assert delta["rows"] == hybrid_delta_swap.TOUCHED_ROWS  # only the touched rows travel
    assert snapshot["rows"] == 5_000 + 2_000 and snapshot["version_bytes"] > delta["version_bytes"]
    assert all(len(values["runs"]) == 2 for values in (delta, snapshot))
    assert 0 < delta["publish_s"] <= delta["publish_to_served_s"]
    headline = run_all.HEADLINES["hybrid_delta_swap"](json.loads(out.read_text()))
    assert headline["delta_publish_to_served_s"] > 0 and headline["delta_vs_snapshot"] > 0
