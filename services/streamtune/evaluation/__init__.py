"""Prequential evaluation: scores, reports and River baselines for the event stream."""

from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.scoring import (
    ContenderResult,
    WindowScore,
    log_loss,
    roc_auc,
    score_contender,
    windowed_scores,
    yearly_scores,
)

__all__ = [
    "ContenderResult",
    "EvaluationError",
    "WindowScore",
    "log_loss",
    "roc_auc",
    "score_contender",
    "windowed_scores",
    "yearly_scores",
]
