"""Online learning of the hybrid model: it learns, falls back on unknown ids, forgets, resumes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from streamtune.evaluation.scoring import roc_auc
from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder
from tests.modeling.hybrid.streams import taste_stream

IDS = HybridConfig(use_text=False, user_rows=64, item_rows=64, sparse_lr=0.1, init_std=0.1)


def prequential(learner: HybridLearner, events, batch: int = 16) -> np.ndarray:
    scores = []
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        scores.append(learner.predict(chunk).probabilities)
        learner.learn(chunk)
    return np.concatenate(scores)


def test_it_learns_who_likes_what_when_counts_carry_no_signal():
    events = taste_stream(4000)
    scores = prequential(HybridLearner(HybridModel(IDS)), events)
    labels = np.array([e["label"] for e in events])
    assert roc_auc(labels[:300], scores[:300]) < 0.65  # nothing known yet
    assert roc_auc(labels[2000:], scores[2000:]) > 0.85


def test_unknown_ids_fall_back_to_text_and_say_so(tiny_model_dir):
    config = HybridConfig(text_dim=32, user_rows=8, item_rows=8, admit_after=2)
    learner = HybridLearner(HybridModel(config, TextEmbedder(SentenceEncoder(tiny_model_dir))))
    events = taste_stream(64, users=4, items=4)
    for _ in range(3):
        learner.learn(events)
    unknown = [
        {"user_id": "stranger", "item_id": "new", "text": "Film 1 | Horror", "context": "liked: Film 3"},
        {"user_id": None, "item_id": None, "text": "Film 2 | Comedy", "context": ""},
        {"user_id": "u1", "item_id": "i1", "text": "Film 1 | Horror", "context": ""},
    ]
    prediction = learner.predict(unknown)
    assert prediction.user_known.tolist() == [False, False, True]
    assert prediction.item_known.tolist() == [False, False, True]
    assert np.isfinite(prediction.probabilities).all()
    assert prediction.probabilities[0] != prediction.probabilities[1]  # the text terms speak


def test_admission_waits_for_enough_sightings():
    learner = HybridLearner(HybridModel(HybridConfig(use_text=False, user_rows=8, item_rows=8, admit_after=2)))
    event = {"user_id": "u", "item_id": "i", "label": 1}
    learner.learn([event])
    assert not learner.predict([event]).user_known[0]
    learner.learn([event])
    assert learner.predict([event]).user_known[0]


def test_forget_removes_row_counts_optimizer_state_and_admission():
    learner = HybridLearner(HybridModel(IDS))
    learner.learn(taste_stream(200))
    model = learner.model
    row = model.users.row("u3")
    assert learner.forget_user("u3") and not learner.forget_user("u3")
    assert model.users.row("u3") == -1
    assert not model.user_table.weights[row].any() and not model.user_table.counts[row].any()
    assert torch.all(learner.user_optimizer.accumulators[row] == learner.user_optimizer.initial_accumulator)


def test_resumed_trainer_state_equals_the_persisted_one_and_continues_identically():
    events = taste_stream(600)
    learner = HybridLearner(HybridModel(IDS))
    learner.learn(events[:300])
    buffer = io.BytesIO()
    torch.save({"model": _model_copy(learner.model), "state": learner.trainer_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = HybridLearner(saved["model"])
    resumed.load_trainer_state(saved["state"])

    persisted = learner.trainer_state()
    restored = resumed.trainer_state()
    torch.testing.assert_close(restored["accumulators"], persisted["accumulators"])
    torch.testing.assert_close(restored["dense_optimizer"], persisted["dense_optimizer"])
    assert restored["mappings"] == persisted["mappings"] and restored["clock"] == persisted["clock"]

    for chunk in (events[300:450], events[450:]):
        learner.learn(chunk)
        resumed.learn(chunk)
    torch.testing.assert_close(resumed.model.user_table.weights, learner.model.user_table.weights)
    torch.testing.assert_close(resumed.model.scorer.state_dict(), learner.model.scorer.state_dict())


def _model_copy(model: HybridModel) -> HybridModel:
    import copy

    return copy.deepcopy(model)


@pytest.mark.parametrize("field", ["user_id", "item_id"])
def test_events_without_an_id_still_train(field):
    learner = HybridLearner(HybridModel(IDS))
    events = [{**event, field: None} for event in taste_stream(32)]
    assert learner.learn(events) > 0


def test_an_untrained_model_scores_exactly_as_the_running_like_rate_counter():
    """Rates start weighted as the popularity counter, and running counts never see an event's own label."""
    from streamtune.evaluation.popularity import popularity_probabilities

    frozen = HybridConfig(use_text=False, user_rows=64, item_rows=64, sparse_lr=0.0, dense_lr=0.0, init_std=0.0)
    events = taste_stream(400, users=10, items=12)
    for event, flip in zip(events, np.random.default_rng(0).random(400) < 0.3, strict=True):
        event["label"] = int(event["label"] != flip)  # noisy, so rates differ between keys
    learner = HybridLearner(HybridModel(frozen))
    scores = []
    for start in range(0, len(events), 8):
        chunk = events[start : start + 8]
        scores.append(learner.predict(chunk, running=True).probabilities)
        learner.learn(chunk)
    np.testing.assert_allclose(np.concatenate(scores), popularity_probabilities(events), rtol=1e-5)


def test_forget_also_removes_the_users_kind_rows(tiny_model_dir):
    config = HybridConfig(text_dim=32, user_rows=8, item_rows=8, kind_bits=3)
    learner = HybridLearner(HybridModel(config, TextEmbedder(SentenceEncoder(tiny_model_dir))))
    learner.learn(taste_stream(64, users=3, items=6))
    user_kinds = learner.model.mappings["user_kinds"]
    assert any(key.startswith("u1\x1f") for key, _ in user_kinds.items())
    learner.forget_user("u1")
    assert not any(key.startswith("u1\x1f") for key, _ in user_kinds.items())
    assert any(key.startswith("u2\x1f") for key, _ in user_kinds.items())


def test_users_learn_a_taste_for_the_words_of_item_texts(tiny_model_dir):
    """The rows of "horror" and "comedy" (words of the item texts) carry each user's taste: the
    dot product with a user's factors favours the genre that user likes, and the two words'
    factors grew far beyond those of "film", a word of every text that tells nothing."""
    encoder = SentenceEncoder(tiny_model_dir)
    config = HybridConfig(text_dim=encoder.dim, user_rows=64, item_rows=64, word_rows=64, sparse_lr=0.1)
    learner = HybridLearner(HybridModel(config, TextEmbedder(encoder)))
    prequential(learner, taste_stream(3000, users=20, items=40))
    model = learner.model
    words = {
        word: model.tables["words"].weights[model.mappings["words"].row(word), 1:]
        for word in ("horror", "comedy", "film")
    }
    assert min(words["horror"].norm(), words["comedy"].norm()) > 5 * words["film"].norm()
    agree = 0
    for user in range(20):
        factors = model.user_table.weights[model.users.row(f"u{user}"), 1:]
        prefers_horror = float(factors @ (words["horror"] - words["comedy"])) > 0
        agree += prefers_horror == (user % 2 == 0)  # even users like the films of GENRES[0], Horror
    assert agree >= 18


def test_versions_written_before_word_rows_load_without_them(tiny_model_dir):
    encoder = SentenceEncoder(tiny_model_dir)
    stored = HybridConfig(text_dim=encoder.dim, user_rows=8, item_rows=8).to_dict()
    assert stored["word_rows"] > 0
    del stored["word_rows"], stored["max_words"]
    config = HybridConfig.from_dict(stored)
    model = HybridModel(config, TextEmbedder(encoder))
    assert config.word_rows == 0 and set(model.mappings) == {"users", "items"}
    event = {"user_id": "u", "item_id": "i", "text": "Film 1 | Horror", "context": ""}
    assert np.isfinite(model.predict([event]).probabilities).all()
