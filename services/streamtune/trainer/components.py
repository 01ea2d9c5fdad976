"""The trainer's parts, built from the settings: tuning spec, learner, and the guards around it
(deduplication, holdout and gate, replay buffer, drift test)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from streamtune.config import Settings
from streamtune.modeling.base import TuningSpec
from streamtune.modeling.compilation import DEFAULT_BACKEND
from streamtune.modeling.shapes import ShapeBuckets
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.decision import QualityGate
from streamtune.trainer.gate.holdout import HOLDOUT_BATCH_ROWS, HoldoutWindow
from streamtune.trainer.gate.judge import Gatekeeper
from streamtune.trainer.learner import OnlineLearner
from streamtune.trainer.monitor.page_hinkley import PageHinkley
from streamtune.trainer.optim.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import TOKEN_TYPE_IDS, check_inputs

logger = logging.getLogger(__name__)


def tuning_spec(settings: Settings) -> TuningSpec:
    return TuningSpec(
        tuning=settings.tuning,
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        lora_target_modules=tuple(settings.lora_target_modules) if settings.lora_target_modules else None,
        lora_layers=settings.lora_layers,
    )


def build_learner(
    settings: Settings, model: torch.nn.Module, device: torch.device, tokenizer: PreTrainedTokenizerBase
) -> OnlineLearner:
    """The learner; build it before any version is applied, so L2-SP anchors on the base weights."""
    return OnlineLearner(
        model,
        device,
        learning_rate=settings.effective_learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        rewarm_factor=settings.lr_rewarm_factor,
        rewarm_steps=settings.lr_rewarm_steps,
        l2sp_weight=settings.l2sp_weight,
        dropout=settings.train_dropout,
        compile_backend=DEFAULT_BACKEND if settings.compile else None,
        shapes=_static_shapes(settings, tokenizer) if settings.compile else None,
    )


def _static_shapes(settings: Settings, tokenizer: PreTrainedTokenizerBase) -> ShapeBuckets:
    """The few batch shapes a compiled model sees: training batches (stream rows plus the most
    replayed rows) and the gate's scoring batches."""
    fraction = settings.replay_fraction
    rows = settings.batch_size + round(settings.batch_size * fraction / (1 - fraction))
    return ShapeBuckets(max(rows, HOLDOUT_BATCH_ROWS), settings.max_length, tokenizer.pad_token_id or 0)


@dataclass
class Guards:
    recent: RecentIds
    gatekeeper: Gatekeeper
    replay: ReplayBuffer
    drift: PageHinkley


def build_guards(settings: Settings, tokenizer: PreTrainedTokenizerBase, tuning: str) -> Guards:
    """Deduplication, holdout and gate, replay buffer, drift test."""
    probe = tokenizer(["probe"], ["probe"], return_tensors="pt")
    token_types = TOKEN_TYPE_IDS in probe
    if settings.holdout_share > 0 or settings.replay_fraction > 0:
        check_inputs(set(probe))
    shape = {
        "width": settings.max_length,
        "vocab_size": len(tokenizer),
        "token_types": token_types,
        "pad_id": tokenizer.pad_token_id or 0,
    }
    gatekeeper = Gatekeeper(
        QualityGate(
            settings.gate_tolerance,
            settings.gate_auc_tolerance,
            settings.gate_trim,
            settings.gate_min_examples,
            settings.gate_patience,
        ),
        HoldoutWindow(settings.holdout_window, **shape),
        tuning,
    )
    replay_capacity = settings.replay_capacity if settings.replay_fraction > 0 else 0
    replay = ReplayBuffer(replay_capacity, settings.replay_max_bytes, seed=settings.seed, **shape)
    logger.info(
        "replay buffer: %d examples, %d bytes; holdout share %.3f, window %d; dedupe window %d ids",
        replay.capacity,
        replay.nbytes,
        settings.holdout_share,
        settings.holdout_window,
        settings.dedupe_window,
    )
    return Guards(
        recent=RecentIds(settings.dedupe_window),
        gatekeeper=gatekeeper,
        replay=replay,
        drift=PageHinkley(settings.drift_threshold, settings.drift_delta, settings.drift_min_examples),
    )
