"""The text family's parts, built from the settings: its settings view, the learner, the row
format of its stored examples and the replay buffer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from streamtune.config import Settings
from streamtune.modeling.base import TuningSpec
from streamtune.modeling.compilation import DEFAULT_BACKEND
from streamtune.modeling.shapes import ShapeBuckets
from streamtune.modeling.text.learner import LearnerConfig, OnlineLearner
from streamtune.trainer.gate.holdout import HOLDOUT_BATCH_ROWS
from streamtune.trainer.optim.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import TOKEN_TYPE_IDS, RowFormat, check_inputs

logger = logging.getLogger(__name__)


def tuning_spec(settings: Settings) -> TuningSpec:
    return TuningSpec(
        tuning=settings.tuning,
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        lora_target_modules=tuple(settings.lora_target_modules) if settings.lora_target_modules else None,
        lora_layers=settings.lora_layers,
        pooling=settings.pooling,
    )


@dataclass(frozen=True)
class TextSettings:
    """What the text family needs to know, resolved once: the model, its tokenizer, how rows
    are shaped and how much of each step is rehearsal."""

    base_model: str
    tokenizer: PreTrainedTokenizerBase
    spec: TuningSpec
    max_length: int
    replay_fraction: float
    row_format: RowFormat

    @classmethod
    def from_settings(cls, settings: Settings, base_model: str, tokenizer: PreTrainedTokenizerBase) -> TextSettings:
        return cls(
            base_model=base_model,
            tokenizer=tokenizer,
            spec=tuning_spec(settings),
            max_length=settings.max_length,
            replay_fraction=settings.replay_fraction,
            row_format=row_format(settings, tokenizer),
        )


def row_format(settings: Settings, tokenizer: PreTrainedTokenizerBase) -> RowFormat:
    """How this tokenizer's rows are stored (failing fast for inputs they cannot rebuild)."""
    probe = tokenizer(["probe"], ["probe"], return_tensors="pt")
    if settings.holdout_share > 0 or settings.replay_fraction > 0:
        check_inputs(set(probe))
    return RowFormat(settings.max_length, len(tokenizer), TOKEN_TYPE_IDS in probe, tokenizer.pad_token_id or 0)


def learner_config(settings: Settings) -> LearnerConfig:
    return LearnerConfig(
        learning_rate=settings.effective_learning_rate,
        head_learning_rate=settings.effective_head_learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        rewarm_factor=settings.lr_rewarm_factor,
        rewarm_steps=settings.lr_rewarm_steps,
        l2sp_weight=settings.l2sp_weight,
        dropout=settings.train_dropout,
        compile_backend=DEFAULT_BACKEND if settings.compile else None,
    )


def build_learner(
    settings: Settings, text: TextSettings, model: torch.nn.Module, device: torch.device
) -> OnlineLearner:
    """The learner; build it before any version is applied, so L2-SP anchors on the base weights."""
    shapes = _static_shapes(settings, text.tokenizer) if settings.compile else None
    return OnlineLearner(model, device, learner_config(settings), shapes=shapes)


def _static_shapes(settings: Settings, tokenizer: PreTrainedTokenizerBase) -> ShapeBuckets:
    """The few batch shapes a compiled model sees: training batches (stream rows plus the most
    replayed rows) and the gate's scoring batches."""
    fraction = settings.replay_fraction
    rows = settings.batch_size + round(settings.batch_size * fraction / (1 - fraction))
    return ShapeBuckets(max(rows, HOLDOUT_BATCH_ROWS), settings.max_length, tokenizer.pad_token_id or 0)


def build_replay(settings: Settings, text: TextSettings) -> ReplayBuffer:
    capacity = settings.replay_capacity if settings.replay_fraction > 0 else 0
    replay = ReplayBuffer(capacity, settings.replay_max_bytes, text.row_format, seed=settings.seed)
    logger.info("replay buffer: %d examples, %d bytes", replay.capacity, replay.nbytes)
    return replay
