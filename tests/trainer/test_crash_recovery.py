"""SIGKILL the trainer at random moments: the final lineage trains every event exactly once.

What this proves: across crashes at arbitrary points (mid-step, mid-publish, between publish
and commit), with events re-delivered under the same id (also across partitions and across
crashes) and invalid records mixed in, the versions LATEST descends from list every valid,
non-held-out event exactly once — the same count and the same set as the stream — and no
held-out event. Cost: about 80 s (seven trainer process starts with a group join each).
"""

from __future__ import annotations

import pytest

from streamtune.testing.crash_harness import CrashPlan, crash_stream, run_crash_replay

pytestmark = pytest.mark.slow

KILLS = 6


def test_sigkill_never_loses_or_repeats_an_event(settings, tmp_path):
    settings = settings.model_copy(
        update={
            "batch_size": 8,
            "publish_every_batches": 1,
            "publish_max_share": 0.0,  # a version per batch, backlog or not
            "max_batch_latency_ms": 100,
            "keep_versions": 100_000,  # the audit walks the whole lineage
            # Accounting, not quality, is under test: a gate rejection would (correctly) discard
            # events and make "trained exactly once" depend on training noise.
            "gate_tolerance": 1e6,
            "gate_auc_tolerance": 1.0,
            "holdout_share": 0.1,
            "kafka_session_timeout_ms": 3000,  # a killed member leaves the group sooner
        }
    )
    stream = crash_stream(events=300, holdout_share=settings.holdout_share, seed=11)
    report = run_crash_replay(settings, stream, CrashPlan(kills=KILLS, seed=11), log_dir=tmp_path)

    assert report.kills >= 5
    assert report.kills_mid_stream >= 3, "the kills must strike while there is work in progress"
    assert report.lineage_complete
    assert report.lost == [], f"{len(report.lost)} events never trained"
    assert report.duplicated == {}, f"events trained twice: {report.duplicated}"
    assert report.unexpected == [], f"held-out or unknown events trained: {report.unexpected}"
    assert report.trained_events == len(stream.expected)
    assert report.discarded == 0
    # Every record is accounted for once: each held-out id once, each re-delivery skipped once.
    assert report.held_out == stream.held_out
    assert report.duplicates_skipped == stream.redeliveries
