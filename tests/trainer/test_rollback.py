"""`streamtune rollback --to N` under a running trainer: N is served again, newer versions are
kept, and the trainer continues from N — re-consuming what came after N's offsets — so the
served lineage still trains every event exactly once. Cost: about 20 s (one re-subscribe)."""

from __future__ import annotations

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.cli import main
from streamtune.testing.crash_harness import (
    event_records,
    produce_records,
    published_records,
    trainer_metric,
    trainer_thread,
)
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.lineage import audit_lineage

pytestmark = pytest.mark.slow


def lineage_covers(store, records):
    latest = store.latest_version()
    return latest is not None and published_records(store) == records


def test_rollback_pins_the_lineage_and_the_trainer_continues_from_it(settings, tmp_path, capsys):
    settings = settings.model_copy(
        update={
            "batch_size": 8,
            "publish_max_share": 0.0,  # a version per batch, backlog or not
            "keep_versions": 1000,
            # Accounting is under test, not quality: no gate rejection may discard events.
            "gate_tolerance": 1e6,
            "gate_auc_tolerance": 1.0,
        }
    )
    events = synthetic_events(64, seed=8, prefix="rb")
    config = tmp_path / "streamtune.env"
    config.write_text(f"STREAMTUNE_CHECKPOINT_DIR={settings.checkpoint_dir}\n")
    store = CheckpointStore(settings.checkpoint_dir)

    with trainer_thread(settings) as trainer:
        produce_records(settings.bootstrap_servers, settings.events_topic, event_records(events[:48]))
        wait_for(lambda: lineage_covers(store, 48), 90, interval_s=0.2, what="the first 48 events published")
        abandoned = [v for v in store.versions() if v > 2]
        assert abandoned, "need versions after 2 to roll back over"
        pinned_offsets = store.read_manifest(2).kafka_offsets

        assert main(["--config", str(config), "rollback", "--to", "2"]) == 0
        assert "LATEST now names version 2" in capsys.readouterr().out
        reloads = "streamtune_lineage_reloads_total"
        wait_for(lambda: trainer_metric(trainer, reloads) == 1, 30, what="the trainer reloading 2")
        # Everything after version 2's offsets is trained again, into children of version 2.
        wait_for(lambda: lineage_covers(store, 48), 90, interval_s=0.2, what="re-consumed after the rollback")
        produce_records(settings.bootstrap_servers, settings.events_topic, event_records(events[48:]))
        wait_for(lambda: lineage_covers(store, 64), 90, interval_s=0.2, what="the new events")

    assert set(abandoned) <= set(store.versions()), "a rollback never deletes versions"
    audit = audit_lineage(store)
    assert audit.versions[:2] == [1, 2] and not set(abandoned) & set(audit.versions)
    assert store.read_manifest(audit.versions[2]).parent_version == 2
    assert sum(pinned_offsets.values()) < 48  # so the events after it really were re-consumed
    expected = {e["event_id"] for e in events if not is_holdout(e["event_id"], settings.holdout_share)}
    assert audit.repeated() == {}
    assert sorted(audit.trained) == sorted(expected)
