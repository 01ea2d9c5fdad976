"""Requests to forget a user (``streamtune forget``), applied to what the trainer keeps of the
stream: the model family's own rows (the text family's replay buffer) and the gate's holdout
window."""

from __future__ import annotations

import logging

from streamtune.metrics import TrainerMetrics
from streamtune.modeling.family import ModelFamily
from streamtune.privacy import user_tags
from streamtune.trainer.gate.holdout import HoldoutWindow

logger = logging.getLogger(__name__)


def forget_users(pseudonyms: set[str], family: ModelFamily, holdout: HoldoutWindow, metrics: TrainerMetrics) -> None:
    """Drop the examples of these users from the model family and the holdout window."""
    if not pseudonyms:
        return
    tags = user_tags(sorted(pseudonyms))
    replayed = family.forget(tags)
    held_out = holdout.forget_users(tags)
    metrics.holdout_examples.set(len(holdout))
    logger.warning(
        "forgot %d user%s on request: %d replay examples and %d holdout examples dropped",
        len(pseudonyms),
        "" if len(pseudonyms) == 1 else "s",
        replayed,
        held_out,
    )
