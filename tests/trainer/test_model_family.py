"""The model-family seam with the text family on the tiny real BERT: the registry, a snapshot
and its restore, export and load, forgetting a user's rehearsal rows."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from streamtune.checkpoints import Manifest
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.events import decode_event
from streamtune.ingest.training_batch import BatchBuilder
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.family import FAMILIES, ModelFamily, build_family
from streamtune.modeling.text.family import TextFamily
from streamtune.privacy import user_tags
from streamtune.testing.events import synthetic_events

CPU = torch.device("cpu")


def family_settings(tiny_model_dir: str, **overrides: object) -> Settings:
    options = {"base_model": tiny_model_dir, "device": "cpu", "max_length": 32, "tuning": "full"}
    return Settings(_env_file=None, **(options | overrides))


def batch_of(family: ModelFamily, events: list[dict], pseudonyms: dict[str, str] | None = None):
    decoded = [decode_event(json.dumps(event).encode(), 4096) for event in events]
    pseudonymise = (lambda user: pseudonyms.get(user)) if pseudonyms is not None else None
    return BatchBuilder(family.batch_encoder(), pseudonymise).build(decoded)


@pytest.fixture
def family(tiny_model_dir) -> TextFamily:
    torch.manual_seed(0)
    built = build_family(family_settings(tiny_model_dir, replay_fraction=0.5), CPU, TrainerMetrics())
    assert isinstance(built, TextFamily)
    return built


def test_an_unknown_kind_names_the_families_there_are(tiny_model_dir):
    with pytest.raises(ConfigurationError, match="STREAMTUNE_MODEL_KIND='nope'") as refused:
        build_family(family_settings(tiny_model_dir, model_kind="nope"), CPU, TrainerMetrics())
    assert all(kind in str(refused.value) for kind in FAMILIES)


def test_restore_puts_the_snapshot_back_and_forgets_what_was_rehearsed_since(family):
    events = synthetic_events(16, seed=3)
    probe = batch_of(family, events[:8])
    published = family.snapshot()
    before = family.score(probe)
    result = family.train(batch_of(family, events[8:]))
    assert result.scores.shape == (8,) and np.isfinite(result.loss)
    assert len(family.replay) == 8
    assert not np.allclose(family.score(probe), before)
    assert family.restore(published) == 8
    assert len(family.replay) == 0
    assert np.allclose(family.score(probe), before, atol=1e-6)


def test_scoring_as_a_snapshot_leaves_the_live_model_as_it_was(family):
    events = synthetic_events(16, seed=4)
    probe = batch_of(family, events[:8])
    published = family.snapshot()
    before = family.score(probe)
    family.train(batch_of(family, events[8:]))
    candidate = family.snapshot()
    after = family.score(probe)
    with family.scoring_as(published, candidate):
        assert np.allclose(family.score(probe), before, atol=1e-6)
    assert np.allclose(family.score(probe), after, atol=1e-6)


def test_an_exported_version_loads_into_a_fresh_family(family, tiny_model_dir, tmp_path):
    events = synthetic_events(16, seed=5)
    family.train(batch_of(family, events[8:]))
    model = family.export(tmp_path, family.snapshot())
    manifest = Manifest(
        version=1,
        parent_version=None,
        created_at="",
        files={},
        kafka_offsets={},
        examples_seen=8,
        examples_in_version=8,
        last_train_loss=None,
        **model,
    )
    probe = batch_of(family, events[:8])
    torch.manual_seed(1)
    fresh = build_family(family_settings(tiny_model_dir), CPU, TrainerMetrics())
    assert not np.allclose(fresh.score(probe), family.score(probe))
    fresh.load(tmp_path, manifest)
    assert np.allclose(fresh.score(probe), family.score(probe), atol=1e-6)
    lora = build_family(family_settings(tiny_model_dir, tuning="lora"), CPU, TrainerMetrics())
    with pytest.raises(ConfigurationError, match="STREAMTUNE_TUNING=lora"):
        lora.load(tmp_path, manifest)


def test_forget_drops_one_users_rehearsal_rows(family):
    events = synthetic_events(8, seed=6)
    pseudonyms = {event["user_id"]: hashlib.sha256(event["user_id"].encode()).hexdigest() for event in events}
    family.train(batch_of(family, events, pseudonyms))
    first = pseudonyms[events[0]["user_id"]]
    rows_of_first = sum(pseudonyms[event["user_id"]] == first for event in events)
    assert family.forget(user_tags([first])) == rows_of_first
    assert len(family.replay) == 8 - rows_of_first
