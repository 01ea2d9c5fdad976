"""Every benchmark runs end to end in its tiny mode and reports the figures it promises.

Real parts throughout (embedded broker, trainer and server processes, the tiny BERT); no figure
is compared with a speed, only checked to exist and be consistent.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import freshness, ingest, pipeline_efficiency, publish_swap, run_all

pytestmark = pytest.mark.slow


def quick(tiny_model_dir, tmp_path, name):
    return ["--quick", "--base-model", tiny_model_dir, "--out", str(tmp_path / f"{name}.json")]


def written(tmp_path, name):
    document = json.loads((tmp_path / f"{name}.json").read_text())
    assert document["benchmark"] == name
    assert len(document["machine"]["load_average_1_5_15"]) == 3
    return document


def test_ingest(tiny_model_dir, tmp_path):
    payload = ingest.main(quick(tiny_model_dir, tmp_path, "ingest"))
    rates = payload["one_core_events_per_s"]
    assert {"decode_validate", "tokenize_pair_encoder_batch_32", "decode_validate_tokenize_hf_call_batch_256"} <= set(
        rates
    )
    assert all(rate["wall"] > 0 and rate["cpu"] > 0 for rate in rates.values())
    assert all(rate > 0 for rate in payload["broker_events_per_s"].values())
    assert payload["goal_met"] == (payload["headline_events_per_cpu_s"] >= 20_000)
    assert "events per CPU-second" in written(tmp_path, "ingest")["table"]


def test_pipeline_efficiency(tiny_model_dir, tmp_path):
    payload = pipeline_efficiency.main(quick(tiny_model_dir, tmp_path, "pipeline_efficiency"))
    result = payload["results"]["pipeline"]
    assert result["bare_events_per_s"] > 0 and result["pipeline_events_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["pair_ratios"][0])
    # No holdout here: every event consumed is trained on, so both counts agree.
    assert result["trained_ratio"] == pytest.approx(result["ratio"])
    assert result["pipeline_examples_per_s"] == pytest.approx(result["pipeline_events_per_s"])
    # One version per batch: every batch after the first was published on its own.
    assert result["pipeline_runs"][0]["versions"] == payload["settings"]["batches"]["pipeline"] - 1
    assert result["bare_runs"][0]["attended_tokens_per_s"] < result["bare_runs"][0]["padded_tokens_per_s"]
    assert payload["bf16_peak_tflops"] is None  # a CPU: no MFU
    written(tmp_path, "pipeline_efficiency")


def test_freshness(tiny_model_dir, tmp_path):
    args = [*quick(tiny_model_dir, tmp_path, "freshness"), "--seconds", "4", "--warmup", "1", "--rate", "16"]
    payload = freshness.main(args)
    assert payload["events_measured"] >= 40
    assert payload["events_unserved"] == 0
    fresh = payload["freshness_s"]
    assert 0 < fresh["p50"] <= fresh["p95"] <= fresh["p99"] <= fresh["max"] < math.inf
    assert payload["versions_served"] >= 1
    assert payload["watermark_header_ms"] is not None
    written(tmp_path, "freshness")


def test_publish_swap(tiny_model_dir, tmp_path):
    payload = publish_swap.main(quick(tiny_model_dir, tmp_path, "publish_swap"))
    lora, full = payload["results"]["lora"], payload["results"]["full"]
    for result in (lora, full):
        assert result["server_swaps"] == result["versions"] == 2
        assert result["publish_s"] > 0
        assert result["announcement_to_served_s"] > 0
    assert lora["weights_bytes"] < full["weights_bytes"]
    written(tmp_path, "publish_swap")


def test_run_all_summarises_what_each_benchmark_wrote(tmp_path):
    (tmp_path / "ingest.json").write_text(
        json.dumps(
            {
                "headline_events_per_cpu_s": 21000.4,
                "broker_events_per_s": {"produce": 1.0, "consume_raw": 2.0, "ingest_thread": 3.0},
            }
        )
    )
    headline = run_all.HEADLINES["ingest"](json.loads((tmp_path / "ingest.json").read_text()))
    assert headline == {
        "decode_validate_tokenize_events_per_cpu_s": 21000,
        "produce_events_per_s": 1,
        "consume_raw_events_per_s": 2,
        "ingest_thread_events_per_s": 3,
    }
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nonsense", "--out-dir", str(tmp_path)])
