"""The learner's step: its own forward pass is the prequential score, and static shapes and
compilation change no number."""

from __future__ import annotations

import pytest
import torch

from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.shapes import ShapeBuckets
from streamtune.modeling.text.learner import LearnerConfig, OnlineLearner

CPU = torch.device("cpu")
TEXTS = ["a great film", "an awful and boring film", "loved it, wonderful", "hated every minute of it"]
CONTEXTS = ["likes drama", None, "likes comedy", "likes drama, thriller"]
LABELS = torch.tensor([1.0, 0.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def learner_for(tiny_model_dir, shapes=None, **options) -> OnlineLearner:
    torch.manual_seed(0)
    model = wrap_for_tuning(load_base_model(tiny_model_dir), TuningSpec(tuning="lora", lora_dropout=0.1))
    return OnlineLearner(model, CPU, LearnerConfig(learning_rate=1e-2, **options), shapes=shapes)


def trainable(learner):
    return [parameter.detach().clone() for parameter in learner.model.parameters() if parameter.requires_grad]


def test_without_dropout_the_step_scores_are_the_predictions_before_the_update(tiny_model_dir, tokenizer):
    learner = learner_for(tiny_model_dir, dropout=False)
    assert learner.step_scores_are_predictions
    inputs = encode_pairs(tokenizer, TEXTS, CONTEXTS, 32)
    for _ in range(3):  # the weights move every step; each step must report the weights it started from
        before = learner.score(inputs)
        result = learner.step(inputs, LABELS)
        torch.testing.assert_close(result.probabilities, before)
        assert not torch.allclose(learner.score(inputs), before)  # it did learn
    assert learner.steps == 3


def test_with_dropout_the_step_scores_are_not_the_predictions(tiny_model_dir, tokenizer):
    learner = learner_for(tiny_model_dir, dropout=True)
    assert not learner.step_scores_are_predictions
    inputs = encode_pairs(tokenizer, TEXTS, CONTEXTS, 32)
    before = learner.score(inputs)
    result = learner.step(inputs, LABELS)
    assert result.probabilities.shape == before.shape
    assert not torch.allclose(result.probabilities, before)  # dropout thinned the model


@pytest.mark.parametrize("compile_backend", [None, pytest.param("aot_eager", marks=pytest.mark.slow)])
def test_static_shapes_train_exactly_like_plain_batches(tiny_model_dir, tokenizer, compile_backend):
    # aot_eager: dynamo and AOTAutograd trace the model as inductor would, without generating C++.
    plain = learner_for(tiny_model_dir, dropout=False)
    padded = learner_for(
        tiny_model_dir,
        dropout=False,
        compile_backend=compile_backend,
        shapes=ShapeBuckets(max_rows=16, max_length=32, pad_id=tokenizer.pad_token_id),
    )
    for rows in (4, 3, 2):  # three row counts: two buckets of rows
        inputs = encode_pairs(tokenizer, TEXTS[:rows], CONTEXTS[:rows], 32)
        expected, actual = plain.step(inputs, LABELS[:rows]), padded.step(inputs, LABELS[:rows])
        assert actual.probabilities.shape == (rows,)
        torch.testing.assert_close(actual.probabilities, expected.probabilities)
        assert actual.loss == pytest.approx(expected.loss, rel=1e-5)
        torch.testing.assert_close(padded.score(inputs), plain.score(inputs))
        for after_padded, after_plain in zip(trainable(padded), trainable(plain), strict=True):
            torch.testing.assert_close(after_padded, after_plain)
