"""The hybrid's slow path on the tiny real BERT and a real directory store: LoRA steps on the text
encoder rename it, versions ship the adapters when they change, a server embeds with each
version's own adapters, and a resumed trainer gets the adapters and their optimizer state back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.inference.delta_chain import HybridLoader
from streamtune.inference.hybrid_model import HybridRow
from streamtune.inference.text_cache import ServerTexts
from streamtune.modeling.hybrid.encoder_lora import adapter_state
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder
from streamtune.modeling.hybrid.version_files import read_payload
from streamtune.testing.events import synthetic_events
from tests.modeling.hybrid.family_helpers import batch_of, hybrid_family, hybrid_settings, pseudonymiser, publish

BATCH = 8


@pytest.fixture
def settings(tiny_model_dir, tmp_path):
    return hybrid_settings(tiny_model_dir, tmp_path / "store", hybrid_slow_every=2, snapshot_every=10)


def shipped(store: CheckpointStore, version: int) -> dict | None:
    return read_payload(store.path_of(version)).get("encoder")


def probe_rows(events: list[dict]) -> list[HybridRow]:
    pseudonym = pseudonymiser().pseudonym
    return [HybridRow(pseudonym(e["user_id"]), e["item_id"], e["text"], e["context"]) for e in events]


def test_slow_steps_rename_the_encoder_and_the_server_embeds_with_each_versions_adapters(settings, tiny_model_dir):
    family = hybrid_family(settings)
    encoder = family.embedder.encoder
    store = CheckpointStore(settings.checkpoint_dir, 100)
    events = synthetic_events(6 * BATCH, seed=1)
    batches = [batch_of(events[start : start + BATCH]) for start in range(0, len(events), BATCH)]

    family.train(batches[0])
    assert encoder.version == encoder.base_version, "no slow step yet: the pretrained encoder"
    family.train(batches[1])  # the 2nd batch: one LoRA step
    first_version = encoder.version
    assert first_version.startswith(f"{encoder.base_version}+lora-")
    publish(store, family, None)  # 1: a snapshot with the adapters
    assert shipped(store, 1)["version"] == first_version

    family.train(batches[2])  # no slow step: a delta without adapters
    publish(store, family, 1)  # 2
    assert store.read_manifest(2).delta_of == 1 and shipped(store, 2) is None
    assert encoder.version == first_version

    server_encoder = SentenceEncoder(tiny_model_dir)
    loader = HybridLoader(store, ServerTexts(server_encoder))
    served_before = loader.load(2)
    probe = synthetic_events(12, seed=9, prefix="probe")  # texts no version has seen
    before = served_before.score_rows(probe_rows(probe))
    assert served_before.texts.version == first_version
    np.testing.assert_allclose(before, family.score(batch_of(probe)), rtol=1e-5, atol=1e-7)

    family.train(batches[3])  # the 4th batch: a second LoRA step
    assert encoder.version not in (first_version, encoder.base_version)
    publish(store, family, 2)  # 3: a delta carrying the new adapters
    assert store.read_manifest(3).delta_of == 2 and shipped(store, 3)["version"] == encoder.version

    served = loader.load(3)
    assert loader.last_chain == [3]
    assert served.texts.version == encoder.version
    np.testing.assert_allclose(
        served.texts.item_vectors([None], [probe[0]["text"]]), family.embedder.embed([probe[0]["text"]]), rtol=1e-5
    )
    assert not np.allclose(
        served.texts.item_vectors([None], [probe[0]["text"]]),
        server_encoder.encode([probe[0]["text"]], frozen=True),
        atol=1e-6,
    ), "the adapters changed the item vector"
    np.testing.assert_allclose(served.score_rows(probe_rows(probe)), family.score(batch_of(probe)), rtol=1e-5)
    # A request still holding version 2 scores with version 2's adapters, as before.
    assert served_before.score_rows(probe_rows(probe)) == pytest.approx(before, rel=1e-6)

    fresh = HybridLoader(store, ServerTexts(SentenceEncoder(tiny_model_dir))).load(3)  # snapshot + 2 deltas
    np.testing.assert_allclose(fresh.score_rows(probe_rows(probe)), family.score(batch_of(probe)), rtol=1e-5)


def test_a_resumed_trainer_has_the_adapters_and_their_optimizer_state(settings):
    family = hybrid_family(settings)
    store = CheckpointStore(settings.checkpoint_dir, 100)
    events = synthetic_events(5 * BATCH, seed=3)
    for start in range(0, len(events), BATCH):
        family.train(batch_of(events[start : start + BATCH]))
    manifest = publish(store, family, None)
    saved = family.trainer_state()

    resumed = hybrid_family(settings)
    resumed.load(store.path_of(manifest.version), manifest)
    resumed.load_trainer_state(saved)
    trained, loaded = family.learner.tuner, resumed.learner.tuner
    assert resumed.embedder.version == family.embedder.version != family.embedder.encoder.base_version
    for name, tensor in adapter_state(family.embedder.encoder.model).items():
        assert torch.equal(tensor, adapter_state(resumed.embedder.encoder.model)[name]), name
    assert (loaded.batches, loaded.steps) == (trained.batches, trained.steps) == (5, 2)
    moments, restored = trained.optimizer.state_dict()["state"], loaded.optimizer.state_dict()["state"]
    assert moments.keys() == restored.keys() and moments
    for index, state in moments.items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state[name], restored[index][name])
    probe = batch_of(synthetic_events(8, seed=9, prefix="probe"))
    np.testing.assert_allclose(resumed.score(probe), family.score(probe), rtol=1e-6)
    # Both take the next slow step from the same state, to the same adapters.
    following = batch_of(synthetic_events(BATCH, seed=4, prefix="next"))
    family.train(following)
    resumed.train(following)
    assert resumed.embedder.version == family.embedder.version
