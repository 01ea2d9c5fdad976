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
        assert set(lora[backend]) == {"publish_s", "cold_load_s", "warm_load_s", "latest_s"}
        assert all(seconds > 0 for seconds in lora[backend].values())
    assert lora["s3_over_local"]["publish_s"] == pytest.approx(lora["s3"]["publish_s"] / lora["local"]["publish_s"])
    document = json.loads(out.read_text())
    assert document["benchmark"] == "store_backends" and "s3 / local" in document["table"]
    assert set(run_all.store_backends_headline(document)) == {
        f"lora_{operation}_{backend}" for operation in ("publish_s", "cold_load_s") for backend in ("local", "s3")
    }
