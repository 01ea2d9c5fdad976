"""A :class:`~streamtune.modeling.text.family.TextFamily` around a given model directory (the
tiny BERT of :mod:`streamtune.testing.tiny_models`), with no replay buffer unless asked."""

from __future__ import annotations

import torch

from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.text.family import TextFamily
from streamtune.modeling.text.learner import LearnerConfig, OnlineLearner
from streamtune.modeling.text.setup import TextSettings
from streamtune.trainer.optim.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import RowFormat

MAX_LENGTH = 32


def text_family(model_dir: str, config: LearnerConfig, *, tuning: str = "full") -> TextFamily:
    """The family on the CPU, rows of :data:`MAX_LENGTH` tokens; seeded, so reruns agree."""
    tokenizer = load_tokenizer(model_dir)
    torch.manual_seed(0)
    spec = TuningSpec(tuning=tuning)
    model = wrap_for_tuning(load_base_model(model_dir), spec)
    form = RowFormat(MAX_LENGTH, len(tokenizer), token_types=True, pad_id=tokenizer.pad_token_id or 0)
    settings = TextSettings(model_dir, tokenizer, spec, MAX_LENGTH, replay_fraction=0.0, row_format=form)
    learner = OnlineLearner(model, torch.device("cpu"), config)
    return TextFamily(settings, learner, ReplayBuffer(0, 0, form), TrainerMetrics())
