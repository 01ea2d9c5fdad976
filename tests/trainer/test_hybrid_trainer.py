"""The hybrid family in the real trainer: embedded broker → TrainerService → directory store.

Every event is trained exactly once across snapshots and deltas; the chain LATEST names loads
into the trainer's own tables; a ``streamtune forget`` request reaches the live tables and
every stored version, delta and trainer state file.
"""

from __future__ import annotations

from collections import Counter

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.modeling.hybrid.family import HybridFamily
from streamtune.privacy import ForgetRequests
from streamtune.testing.crash_harness import event_records, produce_records, published_records, trainer_thread
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.lineage import audit_lineage
from tests.modeling.hybrid.family_helpers import hybrid_family
from tests.modeling.hybrid.test_family import assert_same_tables

pytestmark = pytest.mark.slow


def hybrid(settings):
    return settings.model_copy(
        update={
            "model_kind": "hybrid",
            "batch_size": 8,
            "max_batch_latency_ms": 100,
            "snapshot_every": 3,
            "keep_versions": 100_000,  # the audit walks the whole lineage
            "holdout_share": 0.1,
            "gate_tolerance": 1e6,  # accounting is under test, not whether the tiny model improves
            "gate_auc_tolerance": 1.0,
            "model_process": "off",  # the live tables are compared with the published ones
        }
    )


def test_the_hybrid_trainer_publishes_snapshots_and_deltas_exactly_once(settings):
    settings = hybrid(settings)
    events = synthetic_events(160, seed=21, prefix="hyb")
    expected = {e["event_id"] for e in events if not is_holdout(e["event_id"], settings.holdout_share)}
    store = CheckpointStore(settings.checkpoint_dir)
    with trainer_thread(settings) as trainer:
        assert isinstance(trainer.family, HybridFamily)
        for wave in range(4):
            produce_records(
                settings.bootstrap_servers, settings.events_topic, event_records(events[wave * 40 : (wave + 1) * 40])
            )
            wait_for(lambda wave=wave: published_records(store) >= (wave + 1) * 40, 120, what=f"wave {wave} published")
        leaving = trainer.pseudonymiser.pseudonym("u3")
        assert trainer.family.model.users.row(leaving) >= 0
        before = store.latest_version()
        ForgetRequests(store.root).request(leaving)
        wait_for(lambda: trainer.family.model.users.row(leaving) < 0, 30, what="the forget request applied")
        produce_records(
            settings.bootstrap_servers, settings.events_topic, event_records(synthetic_events(8, seed=5, prefix="late"))
        )
        wait_for(
            lambda: (store.latest_version() or 0) > before and published_records(store) >= 168,
            60,
            what="a version after forgetting",
        )
    live = trainer.family.model

    audit = audit_lineage(store)
    trained = Counter(audit.trained)
    late = {f"late-{i}" for i in range(8)} - {f"late-{i}" for i in range(8) if is_holdout(f"late-{i}", 0.1)}
    assert set(trained) == expected | late and max(trained.values()) == 1
    manifests = [store.read_manifest(version) for version in store.versions()]
    assert any(m.is_delta for m in manifests) and any(not m.is_delta for m in manifests)
    assert all(m.model_kind == "hybrid" and m.chain_length < settings.snapshot_every for m in manifests)

    fresh = hybrid_family(settings)
    latest = store.latest_version()
    fresh.load(store.path_of(latest), store.verify(latest))
    assert_same_tables(live, fresh.model)

    for path in settings.checkpoint_dir.rglob("*"):
        if path.is_file() and "forget" not in path.parts:
            assert leaving.encode() not in path.read_bytes(), f"{path} still names the forgotten user"
    for version in store.versions():
        store.verify(version)
