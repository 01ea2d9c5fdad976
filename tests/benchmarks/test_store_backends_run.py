"""The store backends benchmark runs in its tiny mode and reports both backends' figures."""

from __future__ import annotations

import json

import pytest

from benchmarks import run_all, store_backends

pytestmark = pytest.mark.slow


def test_store_backends_reports_both_backends(tmp_path):
    out = tmp_path / "store_backends.json"
    payload = store_backends.main(["--quick", "--out", str(out)])
    lora = payload["results"]["lora"]
    for backend in ("local", "s3"):
        assert {"publish_s", "cold_load_s", "warm_load_s", "latest_s"} <= set(lora[backend])
        assert all(lora[backend][key] > 0 for key in ("publish_s", "cold_load_s", "warm_load_s", "latest_s"))
    # Files, manifest, LATEST and listings; a cold load reads the manifest and both files.
    assert lora["s3"]["publish_requests"] >= 5 and lora["s3"]["cold_load_requests"] >= 3
    assert lora["local"]["publish_requests"] == 0
    assert lora["s3_over_local"]["publish_s"] == pytest.approx(lora["s3"]["publish_s"] / lora["local"]["publish_s"])
    document = json.loads(out.read_text())
    assert document["benchmark"] == "store_backends" and "s3 / local" in document["table"]
    assert set(run_all.store_backends_headline(document)) == {
        f"lora_{operation}_{backend}" for operation in ("publish_s", "cold_load_s") for backend in ("local", "s3")
    }
