"""The distributed training benchmark runs in its tiny mode: both configurations train the whole
stream (every record covered by the last version of each store) and the ratio is theirs."""

from __future__ import annotations

import json

import pytest

from benchmarks import distributed_training, run_all

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_two_ranks_against_one_on_the_same_stream(tiny_model_dir, tmp_path):
    out = tmp_path / "distributed_training.json"
    payload = distributed_training.main(["--quick", "--base-model", tiny_model_dir, "--out", str(out)])
    runs = payload["runs"]
    assert [run["ranks"] for run in runs] == [1, 2]
    assert all(run["examples_per_s"] > 0 and run["versions"] >= 2 for run in runs)
    results = payload["results"]
    assert results["ratio"] == pytest.approx(results["two_ranks_examples_per_s"] / results["one_rank_examples_per_s"])
    document = json.loads(out.read_text())
    assert "2 ranks × 1 thread" in document["table"]
    assert set(run_all.HEADLINES["distributed_training"](document)) == set(results)
