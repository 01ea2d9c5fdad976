"""The text family's head: mask-aware pooling, its own learning rate, and versions of either
pooling served as they were trained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.inference.loading import ModelLoader
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.text.family import TextFamily, build
from streamtune.modeling.text.learner import LearnerConfig, OnlineLearner
from streamtune.modeling.text.pooling import apply_pooling, masked_mean, pooling_of
from streamtune.modeling.text.setup import learner_config, tuning_spec
from streamtune.testing.events import synthetic_events
from tests.support.versions import perturbed_model, publish_perturbed_version

TEXTS = ["a wonderful film", "an awful film about nothing at all, which goes on", "something else"]
CONTEXTS = [None, "likes drama", None]


def logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs).logits.squeeze(-1)


def test_masked_mean_averages_only_the_real_tokens():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert masked_mean(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


@pytest.mark.parametrize("pooling", ["text_mean", "mean", "cls"])
def test_padding_does_not_change_a_rows_score(tiny_model_dir, pooling):
    model = load_base_model(tiny_model_dir, pooling)
    tokenizer = load_tokenizer(tiny_model_dir)
    alone = encode_pairs(tokenizer, TEXTS[:1], CONTEXTS[:1], 32)
    padded = encode_pairs(tokenizer, TEXTS, CONTEXTS, 32)  # row 0 now has padding after it
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]
    assert logits(model, padded)[0].item() == pytest.approx(logits(model, alone)[0].item(), abs=1e-5)


@pytest.mark.parametrize("pooling", ["text_mean", "mean"])
def test_the_head_reads_the_mean_of_the_pooled_tokens_states(tiny_model_dir, pooling):
    """``text_mean``: the item text's tokens only (segment 0); ``mean``: every real token."""
    model = load_base_model(tiny_model_dir, pooling).eval()
    inputs = encode_pairs(load_tokenizer(tiny_model_dir), TEXTS, CONTEXTS, 32)
    pooled = inputs["attention_mask"].bool()
    if pooling == "text_mean":
        pooled &= inputs["token_type_ids"] == 0
        assert (pooled.sum(dim=1) < inputs["attention_mask"].sum(dim=1))[1]  # row 1 has a context
    with torch.no_grad():
        hidden = model.bert(**inputs).last_hidden_state
        expected = torch.stack([hidden[row][pooled[row]].mean(dim=0) for row in range(len(TEXTS))])
        assert logits(model, inputs).tolist() == pytest.approx(
            model.classifier(expected).squeeze(-1).tolist(), abs=1e-5
        )


def test_mean_pooling_scores_texts_apart_where_the_pooler_barely_does(minilm_dir):
    """The reason for the change, on the real MiniLM: its pooler output hardly varies."""
    tokenizer = load_tokenizer(minilm_dir)
    inputs = encode_pairs(tokenizer, TEXTS, CONTEXTS, 32)
    features = {}
    for pooling in ("pooler", "mean"):
        model = load_base_model(minilm_dir, pooling).eval()
        with torch.no_grad():
            out = model.bert(**inputs)
        pooled = (
            out.pooler_output if pooling == "pooler" else masked_mean(out.last_hidden_state, inputs["attention_mask"])
        )
        features[pooling] = pooled.std(dim=0).mean().item()
    assert features["mean"] > 3 * features["pooler"]


def test_pooling_is_reversible_and_refuses_what_it_does_not_know(tiny_model_dir):
    model = load_base_model(tiny_model_dir)
    assert pooling_of(model) == "pooler"
    stock = type(model)
    assert pooling_of(apply_pooling(model, "mean")) == "mean"
    assert isinstance(model, stock)
    assert type(apply_pooling(model, "pooler")) is stock
    with pytest.raises(ConfigurationError, match="unknown pooling"):
        apply_pooling(model, "max")


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_the_head_has_its_own_learning_rate(tiny_model_dir, tuning):
    settings = Settings(tuning=tuning, learning_rate=1e-4, head_learning_rate=2e-2, warmup_steps=0)
    model = wrap_for_tuning(load_base_model(tiny_model_dir, "mean"), tuning_spec(settings))
    learner = OnlineLearner(model, torch.device("cpu"), learner_config(settings))
    head_ids = {id(p) for name, p in model.named_parameters() if p.requires_grad and "classifier" in name}
    rates = {group["name"]: group["lr"] for group in learner.optimizer.param_groups}
    assert rates == {"body": 1e-4, "head": 2e-2}
    head_group = next(g for g in learner.optimizer.param_groups if g["name"] == "head")
    assert {id(p) for p in head_group["params"]} == head_ids
    assert learner.learning_rate == 1e-4

    # A step moves the head by about its own rate (AdamW's first step is ±lr per weight).
    head = next(p for p in head_group["params"] if p.dim() == 2)
    before = head.detach().clone()
    inputs = encode_pairs(load_tokenizer(tiny_model_dir), TEXTS, CONTEXTS, 32)
    learner.step(inputs, torch.tensor([1.0, 0.0, 1.0]))
    assert (head.detach() - before).abs().max().item() == pytest.approx(2e-2, rel=0.05)


def test_without_a_head_rate_the_head_learns_at_the_common_rate(tiny_model_dir):
    model = wrap_for_tuning(load_base_model(tiny_model_dir), TuningSpec(tuning="lora"))
    learner = OnlineLearner(model, torch.device("cpu"), LearnerConfig(learning_rate=3e-4))
    assert [group["lr"] for group in learner.optimizer.param_groups] == [3e-4, 3e-4]


def test_settings_default_to_mean_pooling_and_a_larger_head_rate():
    settings = Settings()
    assert tuning_spec(settings).pooling == "text_mean"
    assert settings.effective_head_learning_rate > 5 * settings.effective_learning_rate


def test_a_manifest_without_pooling_means_the_pooler():
    spec = TuningSpec(tuning="lora", pooling="mean")
    assert TuningSpec.from_dict(spec.to_dict()) == spec
    assert TuningSpec.from_dict({"tuning": "lora", "lora_r": 8, "lora_alpha": 16}).pooling == "pooler"


@pytest.mark.parametrize(("tuning", "pooling"), [("lora", "text_mean"), ("full", "mean"), ("lora", "pooler")])
def test_a_version_is_served_with_the_pooling_it_was_trained_with(tmp_path, tiny_model_dir, tuning, pooling):
    spec = TuningSpec(tuning=tuning, lora_dropout=0.0, pooling=pooling)
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, seed=5, tuning=spec)
    served = ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32).load(1)

    trained = perturbed_model(tiny_model_dir, spec, seed=5)
    expected = torch.sigmoid(logits(trained, encode_pairs(load_tokenizer(tiny_model_dir), TEXTS, CONTEXTS, 32)))
    assert served.predict(TEXTS, CONTEXTS) == pytest.approx(expected.tolist(), abs=1e-5)


def test_an_old_format_version_still_loads_with_the_pooler(tmp_path, tiny_model_dir):
    """A version written before pooling was recorded: no ``pooling`` in its tuning spec."""
    spec = TuningSpec(tuning="lora", lora_dropout=0.0)
    store = CheckpointStore(tmp_path)
    old = {key: value for key, value in spec.to_dict().items() if key != "pooling"}
    publish_perturbed_version(store, tiny_model_dir, seed=7, tuning=spec, manifest_tuning=old)
    served = ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32).load(1)
    assert "pooling" not in served.manifest["tuning"]
    assert pooling_of(served.module) == "pooler"

    inputs = encode_pairs(load_tokenizer(tiny_model_dir), TEXTS, CONTEXTS, 32)
    expected = torch.sigmoid(logits(perturbed_model(tiny_model_dir, spec, seed=7), inputs))
    assert served.predict(TEXTS, CONTEXTS) == pytest.approx(expected.tolist(), abs=1e-5)
    # The same weights read through mean pooling would score differently: the default matters.
    mean_pooled = perturbed_model(tiny_model_dir, dataclasses.replace(spec, pooling="text_mean"), seed=7)
    assert torch.sigmoid(logits(mean_pooled, inputs)).tolist() != pytest.approx(expected.tolist(), abs=1e-3)


def test_the_trainer_refuses_a_store_written_with_another_pooling(tmp_path, tiny_model_dir):
    def family(pooling: str) -> TextFamily:
        torch.manual_seed(0)
        settings = Settings(_env_file=None, base_model=tiny_model_dir, device="cpu", max_length=32, pooling=pooling)
        return build(settings, torch.device("cpu"), TrainerMetrics())

    trained = family("text_mean")
    events = synthetic_events(16, seed=5)
    encode = trained.batch_encoder()
    inputs = encode([e["text"] for e in events], [e.get("context") for e in events])
    batch = TrainingBatch.of_inputs(inputs, torch.tensor([float(e["label"]) for e in events]))
    trained.train(batch)
    model = trained.export(tmp_path, trained.snapshot())
    assert model["tuning"]["pooling"] == "text_mean"
    manifest = Manifest(
        version=1, parent_version=None, created_at="", files={}, kafka_offsets={},
        examples_seen=16, examples_in_version=16, last_train_loss=None, **model,
    )  # fmt: skip

    same = family("text_mean")
    same.load(tmp_path, manifest)
    assert np.allclose(same.score(batch), trained.score(batch), atol=1e-6)
    with pytest.raises(ConfigurationError, match="STREAMTUNE_POOLING=pooler"):
        family("pooler").load(tmp_path, manifest)
