"""The hybrid family behind the model-family seam, on the tiny real BERT and a real directory
store: deltas whose chain reproduces the trainer's tables, snapshots every K versions,
trainer-only state that comes back equal, the gate's needs, and forgetting a user everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.modeling.hybrid.holdout import RawHoldoutWindow
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.version_files import CACHE_FILE, read_payload
from streamtune.privacy import user_tags
from streamtune.testing.events import synthetic_events
from tests.modeling.hybrid.family_helpers import batch_of, hybrid_family, hybrid_settings, pseudonymiser, publish


@pytest.fixture
def settings(tiny_model_dir, tmp_path):
    return hybrid_settings(tiny_model_dir, tmp_path / "store")


def assert_same_tables(trained: HybridModel, loaded: HybridModel) -> None:
    for space, mapping in trained.mappings.items():
        assert dict(mapping.items()) == dict(loaded.mappings[space].items())
        rows = torch.tensor([row for _, row in mapping.items()], dtype=torch.long)
        assert torch.equal(trained.tables[space].weights[rows], loaded.tables[space].weights[rows])
        assert torch.equal(trained.tables[space].counts[rows], loaded.tables[space].counts[rows])
    for name, tensor in trained.scorer.state_dict().items():
        assert torch.equal(tensor, loaded.scorer.state_dict()[name]), name
    assert trained.global_counts == loaded.global_counts


def test_a_chain_of_deltas_loads_into_the_trainers_tables(settings):
    family = hybrid_family(settings)
    store = CheckpointStore(settings.checkpoint_dir, 100)
    events = synthetic_events(96, seed=1)
    parent = None
    kinds = []
    for start in range(0, 96, 16):
        result = family.train(batch_of(events[start : start + 16]))
        assert result.scores.shape == (16,) and np.isfinite(result.loss)
        manifest = publish(store, family, parent)
        parent = manifest.version
        kinds.append((manifest.delta_of, manifest.chain_length))
    # snapshot_every=4: a snapshot, three deltas each on its parent, then a snapshot again.
    assert kinds == [(None, 0), (1, 1), (2, 2), (3, 3), (None, 0), (5, 1)]
    delta_rows = len(read_payload(store.path_of(6))["users"]["keys"])
    assert 0 < delta_rows <= 16, "a delta ships only the rows the batch touched"
    assert (store.path_of(1) / CACHE_FILE).is_file()

    for version in (4, 6):  # the end of each chain
        fresh = hybrid_family(settings)
        fresh.load(store.path_of(version), store.verify(version))
        if version == 6:
            assert_same_tables(family.model, fresh.model)
            probe = batch_of(synthetic_events(16, seed=9))
            assert np.allclose(family.score(probe), fresh.score(probe))
            # The text cache came with the versions: the loaded family embeds nothing again.
            misses = fresh.embedder.cache.misses
            fresh.score(batch_of(events[:16]))
            assert fresh.embedder.cache.misses == misses


def test_a_failed_publish_makes_the_next_version_a_snapshot(settings, tmp_path):
    family = hybrid_family(settings)
    store = CheckpointStore(settings.checkpoint_dir, 100)
    events = synthetic_events(48, seed=2)
    family.train(batch_of(events[:16]))
    publish(store, family, None)
    family.train(batch_of(events[16:32]))
    family.export(tmp_path, family.snapshot(), parent=store.path_of(1))  # written, never published
    family.train(batch_of(events[32:]))
    manifest = publish(store, family, 1)
    assert manifest.delta_of is None, "the parent is not the state exported last: no delta against it"


def test_trainer_state_comes_back_equal(settings):
    family = hybrid_family(settings)
    store = CheckpointStore(settings.checkpoint_dir, 100)
    family.train(batch_of(synthetic_events(32, seed=3)))
    manifest = publish(store, family, None)
    saved = family.trainer_state()
    resumed = hybrid_family(settings)
    resumed.load(store.path_of(1), manifest)
    resumed.load_trainer_state(saved)
    for space, optimizer in family.learner.sparse_optimizers.items():
        assert torch.equal(optimizer.accumulators, resumed.learner.sparse_optimizers[space].accumulators)
    moments, loaded = family.learner.dense_optimizer.state_dict(), resumed.learner.dense_optimizer.state_dict()
    for index, state in moments["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state[name], loaded["state"][index][name])
    assert family.model.users.state_dict() == resumed.model.users.state_dict()
    assert resumed.learner.clock == family.learner.clock == 32


def test_restore_and_scoring_as_serve_the_gate(settings):
    family = hybrid_family(settings)
    events = synthetic_events(48, seed=4)
    probe = batch_of(events[:16])
    family.train(probe)
    published = family.snapshot()
    before = family.score(probe)
    family.train(batch_of(events[16:]))
    after = family.score(probe)
    assert not np.allclose(before, after)
    with family.scoring_as(published, family.snapshot()):
        assert np.allclose(family.score(probe), before)
    assert np.allclose(family.score(probe), after)
    assert family.restore(published) == 0
    assert np.allclose(family.score(probe), before)


def test_the_raw_holdout_window_scores_saves_and_forgets(settings):
    family = hybrid_family(settings)
    window = family.holdout_window(8)
    assert isinstance(window, RawHoldoutWindow)
    batch = batch_of(synthetic_events(12, seed=5))
    window.add_batch(batch, np.arange(12))
    assert len(window) == 8
    scores = np.concatenate([family.score(part) for part in window.batches()])
    assert scores.shape == (8,) and np.array_equal(window.labels(), batch.labels.numpy()[4:].astype(np.float64))
    copy = RawHoldoutWindow(8)
    copy.load_state(window.state())
    assert np.allclose(np.concatenate([family.score(part) for part in copy.batches()]), scores)
    tag = batch.user_tags()[5]
    dropped = copy.forget_users(np.array([tag]))
    assert dropped == int((batch.user_tags()[4:] == tag).sum()) > 0
    assert tag not in copy.state()["holdout.users"]


def test_forget_leaves_no_row_of_the_user_anywhere_in_the_store(settings):
    settings = settings.model_copy(update={"snapshot_every": 10})
    family = hybrid_family(settings)
    store = CheckpointStore(settings.checkpoint_dir, 100)
    events = synthetic_events(64, seed=6)
    for event in events[::4]:
        event["user_id"] = "leaving-user"
    parent = None
    for start in range(0, 64, 16):
        batch = batch_of(events[start : start + 16])
        family.train(batch)
        manifest = publish(store, family, parent)
        parent = manifest.version
    pseudonym = pseudonymiser().pseudonym("leaving-user")
    tag = user_tags([pseudonym])
    assert family.model.users.row(pseudonym) >= 0
    assert family.forget(tag) == 1
    assert family.model.users.row(pseudonym) < 0
    manifest = publish(store, family, parent)  # the next delta clears the row on servers too

    for path in settings.checkpoint_dir.rglob("*"):
        if path.is_file() and "forget" not in path.parts:
            assert pseudonym.encode() not in path.read_bytes(), f"{path} still names the user"
    for version in store.versions():
        store.verify(version)  # rewritten files still match their manifests
        loaded = hybrid_family(settings)
        loaded.load(store.path_of(version), store.read_manifest(version))
        assert loaded.model.users.row(pseudonym) < 0
    assert manifest.delta_of == parent
    cleared = read_payload(store.path_of(manifest.version))["users"]
    assert None in cleared["keys"], "the delta frees the user's row on the servers that hold it"


def test_hybrid_micro_batching_defaults_yield_to_explicit_settings():
    from streamtune.config import HYBRID_DEFAULTS, Settings

    hybrid = Settings(_env_file=None, model_kind="hybrid")
    assert {name: getattr(hybrid, name) for name in HYBRID_DEFAULTS} == HYBRID_DEFAULTS
    assert hybrid.max_batch_latency_ms < Settings(_env_file=None).max_batch_latency_ms
    assert Settings(_env_file=None, model_kind="hybrid", batch_size=8).batch_size == 8
