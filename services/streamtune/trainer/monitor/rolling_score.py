"""Rolling prequential (test-then-train) scores: each example is scored before it is learned.

Reference: Dawid, "Present position and potential developments: some personal views —
statistical theory, the prequential approach", JRSS A 147(2), 1984.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_EPS = 1e-7


class RollingScore:
    """Log-loss and ROC AUC over the last ``window`` scored examples.

    >>> score = RollingScore(window=4)
    >>> score.update([1, 0, 1, 0], [0.9, 0.2, 0.8, 0.3])
    >>> round(score.auc(), 3)
    1.0
    """

    def __init__(self, window: int = 2000) -> None:
        self._labels: deque[float] = deque(maxlen=window)
        self._scores: deque[float] = deque(maxlen=window)

    def __len__(self) -> int:
        return len(self._labels)

    def update(self, labels: list[float], scores: list[float]) -> None:
        self._labels.extend(labels)
        self._scores.extend(scores)

    def logloss(self) -> float:
        if not self._labels:
            return float("nan")
        y = np.asarray(self._labels)
        p = np.clip(np.asarray(self._scores), _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def auc(self) -> float | None:
        """Mann–Whitney AUC with hard labels (label >= 0.5); None until both classes are seen."""
        return roc_auc(np.asarray(self._labels) >= 0.5, np.asarray(self._scores))

    def as_metrics(self) -> dict[str, float]:
        metrics = {"prequential_logloss": self.logloss(), "prequential_examples": float(len(self))}
        auc = self.auc()
        if auc is not None:
            metrics["prequential_auc"] = auc
        return {name: value for name, value in metrics.items() if np.isfinite(value)}


def log_losses(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-example binary log-loss of probabilities ``scores`` (clipped away from 0 and 1).

    >>> log_losses(np.array([1.0, 0.0]), np.array([0.5, 0.5])).round(4).tolist()
    [0.6931, 0.6931]
    """
    p = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(labels, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve from average ranks (ties count one half)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
