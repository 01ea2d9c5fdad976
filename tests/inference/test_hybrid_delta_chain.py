"""The server's hybrid loader: snapshots and delta chains from a real store equal the trainer's tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import ModelLoadError, ModelNotReadyError
from streamtune.inference.delta_chain import HybridLoader, clone_model
from streamtune.inference.hybrid_model import HybridRow
from streamtune.inference.slot import ModelSlot
from streamtune.inference.text_cache import ServerTexts
from streamtune.metrics import ServingMetrics
from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder
from streamtune.modeling.hybrid.version_files import MODEL_FILE
from streamtune.modeling.hybrid.versions import export_delta, export_snapshot
from streamtune.testing.hybrid_store import publish_hybrid
from tests.modeling.hybrid.streams import taste_stream
from tests.modeling.hybrid.test_versions import assert_same_model


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: str) -> SentenceEncoder:
    return SentenceEncoder(tiny_model_dir)


def new_learner(encoder: SentenceEncoder) -> HybridLearner:
    config = HybridConfig(
        text_dim=encoder.dim, user_rows=32, item_rows=24, word_rows=20, expire_after=400, sparse_lr=0.1
    )
    return HybridLearner(HybridModel(config, TextEmbedder(encoder)))


def probe_rows(n: int = 40) -> list[HybridRow]:
    return [HybridRow(e["user_id"], e["item_id"], e["text"], e["context"]) for e in taste_stream(n, seed=3)]


def test_a_delta_chain_applied_by_the_server_equals_the_trainer_tables(tmp_path: Path, encoder: SentenceEncoder):
    store = CheckpointStore(tmp_path / "store")
    learner = new_learner(encoder)
    # More users than rows, and more words (33) than word rows: evictions and freed rows.
    events = taste_stream(900, users=50, items=30)
    learner.learn(events[:100])
    publish_hybrid(store, export_snapshot(learner.model))
    loader = HybridLoader(store, ServerTexts(encoder))
    first = loader.load(1)
    before = first.score_rows(probe_rows())
    for start in range(100, 700, 100):
        learner.learn(events[start : start + 100])
        if start == 400:
            assert learner.forget_user(events[start + 99]["user_id"])  # just seen: it has a row
        publish_hybrid(store, export_delta(learner.model))
    served = loader.load(store.latest_version())
    assert loader.last_chain == [2, 3, 4, 5, 6, 7]  # applied on the served version 1, in order
    assert_same_model(served.model, learner.model)
    expected = learner.predict([{**e, "user_id": e["user_id"]} for e in taste_stream(40, seed=3)]).probabilities
    np.testing.assert_allclose(served.score_rows(probe_rows()), expected, rtol=1e-5)
    # The version the requests in flight hold was not touched by the deltas.
    assert first.score_rows(probe_rows()) == before

    fresh = HybridLoader(store, ServerTexts(encoder)).load(7)  # a new replica: snapshot + every delta
    assert_same_model(fresh.model, learner.model)


def test_a_delta_whose_parent_is_not_served_is_built_from_the_newest_snapshot(tmp_path: Path, encoder):
    store = CheckpointStore(tmp_path / "store")
    learner = new_learner(encoder)
    events = taste_stream(500)
    learner.learn(events[:100])
    publish_hybrid(store, export_snapshot(learner.model))  # 1
    loader = HybridLoader(store, ServerTexts(encoder))
    loader.load(1)
    for start in (100, 200):
        learner.learn(events[start : start + 100])
        publish_hybrid(store, export_delta(learner.model))  # 2, 3
    learner.learn(events[300:400])
    publish_hybrid(store, export_snapshot(learner.model))  # 4: a full snapshot
    learner.learn(events[400:])
    publish_hybrid(store, export_delta(learner.model))  # 5, a delta of 4
    served = loader.load(5)
    assert loader.last_chain == [4, 5]
    assert_same_model(served.model, learner.model)


def test_a_corrupt_delta_is_refused_and_the_served_version_keeps_serving(tmp_path: Path, encoder):
    store = CheckpointStore(tmp_path / "store")
    learner = new_learner(encoder)
    learner.learn(taste_stream(100))
    publish_hybrid(store, export_snapshot(learner.model))
    learner.learn(taste_stream(100, seed=1))
    publish_hybrid(store, export_delta(learner.model))
    tensors = store.path_of(2) / MODEL_FILE
    raw = bytearray(tensors.read_bytes())
    raw[-1] ^= 0xFF
    tensors.write_bytes(bytes(raw))
    slot = ModelSlot(HybridLoader(store, ServerTexts(encoder)).load, ServingMetrics())
    assert slot.ensure(1)
    with pytest.raises(ModelLoadError, match="sha256"):
        slot.swap_to(2)
    assert slot.current is not None and slot.current.version == 1


def test_a_clone_is_independent_of_its_original(encoder):
    learner = new_learner(encoder)
    learner.learn(taste_stream(200))
    clone = clone_model(learner.model)
    assert_same_model(clone, learner.model)
    weights = learner.model.user_table.weights.clone()
    clone.user_table.weights += 1.0
    clone.users.assign("someone new", 0)
    torch.testing.assert_close(learner.model.user_table.weights, weights)
    assert "someone new" not in learner.model.users


def test_deltas_loaded_one_by_one_reuse_the_retired_tables_and_stay_exact(tmp_path: Path, encoder):
    store = CheckpointStore(tmp_path / "store")
    learner = new_learner(encoder)
    events = taste_stream(700, users=50, items=30)
    learner.learn(events[:100])
    publish_hybrid(store, export_snapshot(learner.model))
    loader = HybridLoader(store, ServerTexts(encoder))
    served = [loader.load(1)]
    for start in range(100, 700, 100):
        learner.learn(events[start : start + 100])
        served.append(loader.load(publish_hybrid(store, export_delta(learner.model)).version))
        assert_same_model(served[-1].model, learner.model)  # exact after every load, reused or copied
    assert loader.reused_tables == 5  # every delta load but the first after the snapshot
    assert served[-1].model is served[-3].model  # two sets of tables take turns
    with pytest.raises(ModelNotReadyError):  # a retired version refuses a straggling batch
        served[-3].score_rows(probe_rows(1))


def test_tables_a_batch_still_reads_are_copied_not_reused(tmp_path: Path, encoder):
    store = CheckpointStore(tmp_path / "store")
    learner = new_learner(encoder)
    learner.learn(taste_stream(100))
    publish_hybrid(store, export_snapshot(learner.model))
    loader = HybridLoader(store, ServerTexts(encoder))
    first = loader.load(1)
    before = first.score_rows(probe_rows())
    with first.readers:  # a batch is scoring on version 1 through both loads
        for seed in (1, 2):
            learner.learn(taste_stream(100, seed=seed))
            loader.load(publish_hybrid(store, export_delta(learner.model)).version)
    assert loader.reused_tables == 0
    assert first.score_rows(probe_rows()) == before
    assert_same_model(loader.load(3).model, learner.model)
