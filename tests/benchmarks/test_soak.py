"""A short soak of the whole stack (`streamtune up` with the tiny BERT): events on
three partitions and predict traffic for 45 s, with the trainer SIGKILLed once in the middle.

Asserts behaviours, never speeds: every partition's share of the trained advance within 10 % of
its share of the events, no 5xx and no unanswered predict (a trainer kill must not cost one),
the trainer back and counted as a restart, and no event lost or trained twice. Cost: about 2
minutes.
"""

from __future__ import annotations

import pytest

from benchmarks import run_all, soak

pytestmark = pytest.mark.slow


def test_a_short_soak_is_fair_and_answers_every_request(tiny_model_dir, tmp_path):
    result = soak.main(
        [
            *("--quick", "--base-model", tiny_model_dir, "--out", str(tmp_path / "soak.json")),
            *("--minutes", "0.75", "--events-per-s", "20", "--requests-per-s", "15", "--report-every", "20"),
            *("--kill", "trainer", "--kills", "1", "--kill-every", "20", "--drain-s", "30"),
        ]
    )
    fair = result["fairness_over_run"]
    assert fair["within_10_percent"], fair
    assert sum(p["advanced"] for p in fair["partitions"].values()) >= 700  # most of the events
    predict = result["predict_whole_run"]
    assert predict["ok"] > 0
    assert predict["status_5xx_not_shed"] == 0 and predict["failed_5xx_or_no_answer"] == 0, predict
    [kill] = result["kills"]
    assert kill["child"] == "trainer" and kill["ready_after_s"] is not None
    assert kill["predict_unavailable_s"] == 0.0
    assert result["restarts"] == {"trainer": 1.0, "server": 0.0}
    audit = result["exactly_once"]
    assert audit["lineage_complete"] and audit["lost"] == 0 and audit["trained_twice"] == 0, audit
    assert audit["events_covered"] == sum(result["produced_per_partition"].values())  # drained
    sampled = set().union(*(sample["rss_mib"] for sample in result["samples"]))  # a killed child may miss one
    assert {"supervisor", "broker", "trainer", "server"} <= sampled
    assert result["samples"][-1]["store_mib"] > 0
    assert result["stack_exit_status"] == 0
    headline = run_all.soak_headline(result)  # what `make bench` summarises
    assert headline["status_5xx_not_shed"] == 0 and headline["partition_share_worst_off_by"] <= 0.10
