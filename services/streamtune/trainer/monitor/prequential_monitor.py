"""Prequential scoring of the stream, and the drift test on it.

Every fresh event is scored by the model before it learns it (test-then-train). The scores feed
the rolling log-loss and AUC (:mod:`streamtune.trainer.monitor.rolling_score`) and a Page-Hinkley
test on the per-example log-loss (:mod:`streamtune.trainer.monitor.page_hinkley`), whose alarm
is counted and handed to the model family (``on_drift``), which says itself what it does about it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from streamtune.metrics import TrainerMetrics
from streamtune.trainer.monitor.page_hinkley import PageHinkley
from streamtune.trainer.monitor.rolling_score import RollingScore, trainer_log_losses

logger = logging.getLogger(__name__)


class PrequentialMonitor:
    """Rolling prequential scores and the drift test, exported as metrics."""

    def __init__(
        self, drift: PageHinkley, metrics: TrainerMetrics, *, on_drift: Callable[[], None], window: int = 2000
    ) -> None:
        self.score = RollingScore(window=window)
        self.drift = drift
        self._on_drift = on_drift
        self._metrics = metrics
        # The gauges read the window when scraped, not after every batch: a fast trainer steps
        # hundreds of times between two scrapes, and each reading sorts the whole window.
        metrics.prequential_loss.set_function(self.score.logloss)
        metrics.prequential_auc.set_function(self._auc_or_nan)

    def _auc_or_nan(self) -> float:
        auc = self.score.auc()
        return math.nan if auc is None else auc

    def record(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        """Score the model's predictions from before it learned these rows."""
        self.score.update(labels.tolist(), probabilities.tolist())
        for loss in trainer_log_losses(labels, probabilities):
            if self.drift.update(float(loss)).drift:
                self._metrics.drift_detected.inc()
                self._on_drift()
                logger.warning(
                    "drift detected on the prequential log-loss (Page-Hinkley statistic %.1f > %.1f, "
                    "rolling loss %.4f)",
                    self.drift.statistic,
                    self.drift.threshold,
                    self.score.logloss(),
                )

    def as_metrics(self) -> dict[str, float]:
        return self.score.as_metrics()
