"""The text family behind the model-family seam (:mod:`streamtune.modeling.family`).

A pretrained Hugging Face sequence classifier with one logit, tuned with LoRA (PEFT) or in full
by an :class:`~streamtune.modeling.text.learner.OnlineLearner`; rows are (item text, context)
pairs tokenized on the ingest thread (:class:`~streamtune.modeling.encoding.PairEncoder`). Each
training step rehearses a sample of the replay buffer (a forgetting guard,
:mod:`streamtune.trainer.optim.replay_buffer`), which is why the family owns it: the buffer
holds rows in this family's form. A version's model files are the trainable weights, in full
(no deltas); AdamW's moments are not persisted (the schedule warms up again on every start).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from streamtune.checkpoints import Manifest
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.ingest.training_batch import BatchEncoder, TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, resolve_base_model, wrap_for_tuning
from streamtune.modeling.encoding import PairEncoder
from streamtune.modeling.family import StepResult
from streamtune.modeling.text.learner import OnlineLearner
from streamtune.modeling.text.setup import TextSettings, build_learner, build_replay
from streamtune.modeling.weights import apply_state, load_state, save_state, trainable_state
from streamtune.trainer.gate.holdout import HoldoutWindow
from streamtune.trainer.optim.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import concat_batches

logger = logging.getLogger(__name__)

Weights = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TextSnapshot:
    """The trainable weights of a version, and the replay buffer's arrival count at that time
    (a rollback forgets what the buffer took in since)."""

    weights: Weights
    replay_mark: int


class TextFamily:
    """:class:`~streamtune.modeling.family.ModelFamily` for text pairs (LoRA or full)."""

    kind = "text"
    writes_deltas = False
    gate_allows_noise = False  # the allowance let a poisoned stretch through (test_quality_gate)

    def __init__(
        self, settings: TextSettings, learner: OnlineLearner, replay: ReplayBuffer, metrics: TrainerMetrics
    ) -> None:
        self.settings = settings
        self.learner = learner
        self.replay = replay
        self._metrics = metrics
        metrics.replay_buffer_bytes.set(replay.nbytes)

    @property
    def spec(self) -> TuningSpec:
        return self.settings.spec

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.settings.tokenizer

    @property
    def base_model(self) -> str:
        return self.settings.base_model

    # --- ingest ----------------------------------------------------------------------------
    def batch_encoder(self) -> BatchEncoder:
        return PairEncoder(self.tokenizer, self.settings.max_length)

    # --- train and score -------------------------------------------------------------------
    def train(self, batch: TrainingBatch) -> StepResult:
        """One step on the batch plus a replayed sample of the past.

        The step's own forward pass scores the rows before the update (prequential); only a
        learner training with dropout, whose forward is a random thinning of the model, needs a
        scoring pass of its own first.
        """
        inputs, labels = batch.inputs, batch.labels
        scored = None if self.learner.step_scores_are_predictions else self.learner.score(inputs)
        fraction = self.settings.replay_fraction
        replayed = self.replay.sample(round(len(batch) * fraction / (1 - fraction)))
        if replayed is not None:
            inputs = concat_batches(inputs, replayed[0], self.tokenizer.pad_token_id or 0)
            labels = torch.cat([labels, replayed[1]])
        result = self.learner.step(inputs, labels)
        predictions = result.probabilities[: len(batch)] if scored is None else scored
        rows = np.arange(len(batch))
        self.replay.add(batch.inputs, rows, batch.labels.numpy(), batch.user_tags())
        self._metrics.train_batch_size.observe(len(labels))
        self._metrics.learning_rate.set(self.learner.learning_rate)
        self._metrics.replay_buffer_examples.set(len(self.replay))
        return StepResult(result.loss, predictions.numpy())

    def score(self, batch: TrainingBatch) -> np.ndarray:
        return self.learner.score(batch.inputs).numpy()

    def on_drift(self) -> None:
        """Re-warm the learning rate (:class:`~streamtune.trainer.optim.lr_schedule.StreamSchedule`;
        a factor of 1, the default, changes no rate)."""
        if self.learner.rewarm():
            schedule = self.learner.schedule
            logger.info(
                "re-warming the encoder's learning rate: x%.1f, back over %d steps",
                schedule.rewarm_factor,
                schedule.rewarm_steps,
            )

    def holdout_window(self, capacity: int) -> HoldoutWindow:
        return HoldoutWindow(capacity, self.settings.row_format)

    # --- versions --------------------------------------------------------------------------
    def export(self, directory: Path, snapshot: TextSnapshot, *, parent: Path | None = None) -> dict[str, Any]:
        """Write ``snapshot``'s weights in full (the text family makes no deltas: ``parent`` is
        unused); returns the manifest's description of the model."""
        del parent
        save_state(snapshot.weights, self.spec.tuning, directory)
        return {"base_model": self.base_model, "tuning": self.spec.to_dict(), "max_length": self.settings.max_length}

    def load(self, directory: Path, manifest: Manifest) -> None:
        """The version's weights, a fresh optimizer and an empty replay buffer (its rows belong
        to another lineage)."""
        if manifest.tuning.get("tuning") != self.spec.tuning:
            raise ConfigurationError(
                f"the store at {directory.parent} holds {manifest.tuning.get('tuning')} versions but "
                f"STREAMTUNE_TUNING={self.spec.tuning}: use another STREAMTUNE_CHECKPOINT_DIR"
            )
        pooling = TuningSpec.from_dict(manifest.tuning).pooling
        if pooling != self.spec.pooling:
            raise ConfigurationError(
                f"the store at {directory.parent} holds versions with {pooling} pooling but "
                f"STREAMTUNE_POOLING={self.spec.pooling}: set it to {pooling}, or use another STREAMTUNE_CHECKPOINT_DIR"
            )
        apply_state(self.learner.model, load_state(directory, self.spec.tuning), self.spec.tuning)
        self.learner.reset_optimizer()
        self.replay.clear()
        self._metrics.replay_buffer_examples.set(0)

    def trainer_state(self) -> dict[str, np.ndarray]:
        return {}  # AdamW's moments are not persisted: every start warms up again

    def load_trainer_state(self, state: dict[str, np.ndarray]) -> None:
        del state

    def forget(self, user_tags: np.ndarray) -> int:
        dropped = self.replay.forget_users(user_tags)
        self._metrics.replay_buffer_examples.set(len(self.replay))
        return dropped

    # --- the gate's needs ------------------------------------------------------------------
    def snapshot(self) -> TextSnapshot:
        return TextSnapshot(trainable_state(self.learner.model, self.spec.tuning), self.replay.mark())

    def restore(self, snapshot: TextSnapshot) -> int:
        apply_state(self.learner.model, snapshot.weights, self.spec.tuning)
        self.learner.reset_optimizer()
        forgotten = self.replay.forget_since(snapshot.replay_mark)
        self._metrics.replay_buffer_examples.set(len(self.replay))
        return forgotten

    @contextlib.contextmanager
    def scoring_as(self, snapshot: TextSnapshot, current: TextSnapshot) -> Iterator[None]:
        apply_state(self.learner.model, snapshot.weights, self.spec.tuning)
        try:
            yield
        finally:
            apply_state(self.learner.model, current.weights, self.spec.tuning)


def build(settings: Settings, device: torch.device, metrics: TrainerMetrics) -> TextFamily:
    """The text family as the settings describe it, on ``device``."""
    base_model = resolve_base_model(settings.base_model)
    text = TextSettings.from_settings(settings, base_model, load_tokenizer(base_model))
    model = wrap_for_tuning(load_base_model(base_model, text.spec.pooling), text.spec)
    learner = build_learner(settings, text, model, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("base model %s, %d trainable parameters", base_model, trainable)
    return TextFamily(text, learner, build_replay(settings, text), metrics)
