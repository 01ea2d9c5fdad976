"""Prequential evaluation: scores, reports and River baselines for the event stream."""

from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.score_options import Breakdown, RunRecord
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
    "Breakdown",
    "ContenderResult",
    "EvaluationError",
    "RunRecord",
    "WindowScore",
    "log_loss",
    "roc_auc",
    "score_contender",
    "windowed_scores",
    "yearly_scores",
]
