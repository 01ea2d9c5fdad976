"""Under a backlog the trainer may fold several batches into one version (for
``publish_max_delay_ms``, or until publishing is at most ``publish_max_share`` of its time):
fewer gate runs and writes, every event still trained exactly once. With neither it publishes a
version per batch. A few seconds each on the real broker."""

from __future__ import annotations

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.testing.crash_harness import event_records, produce_records, published_records, trainer_thread
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.lineage import audit_lineage

pytestmark = pytest.mark.slow
BATCH = 8


@pytest.mark.parametrize(("delay_ms", "share"), [(0, 0.0), (60_000, 0.0), (0, 0.1)])
def test_versions_under_a_backlog(settings, delay_ms, share):
    settings = settings.model_copy(
        update={
            "batch_size": BATCH,
            "keep_versions": 1000,
            "publish_max_delay_ms": delay_ms,
            "publish_max_share": share,
            # Accounting is under test, not quality: no gate rejection may discard events.
            "gate_tolerance": 1e6,
            "gate_auc_tolerance": 1.0,
        }
    )
    events = synthetic_events(96, seed=11, prefix=f"cadence-{delay_ms}-{share}")
    # The whole stream waits before the trainer starts: a backlog from the first fetch on.
    produce_records(settings.bootstrap_servers, settings.events_topic, event_records(events))
    store = CheckpointStore(settings.checkpoint_dir)
    with trainer_thread(settings):
        wait_for(lambda: published_records(store) == len(events), 90, interval_s=0.2, what="all events published")

    audit = audit_lineage(store)
    trained = [e["event_id"] for e in events if not is_holdout(e["event_id"], settings.holdout_share)]
    assert sorted(audit.trained) == sorted(trained)  # exactly once, whatever the cadence
    assert audit.repeated() == {}
    sizes = [store.read_manifest(version).examples_in_version for version in audit.versions]
    if delay_ms or share:
        assert max(sizes) > BATCH, sizes  # batches folded together while more were waiting
        assert len(sizes) < len(trained) / BATCH
    else:
        assert max(sizes) <= BATCH, sizes  # one version per batch
