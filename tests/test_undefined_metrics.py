"""A metric with no defined value reads NaN, never a misleading 0."""

from __future__ import annotations

import math

import numpy as np

from streamtune.metrics import TrainerMetrics
from streamtune.trainer.monitor.page_hinkley import PageHinkley
from streamtune.trainer.monitor.prequential_monitor import PrequentialMonitor


def sample(metrics: TrainerMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def test_prequential_scores_are_nan_until_they_are_defined():
    metrics = TrainerMetrics()
    assert math.isnan(sample(metrics, "streamtune_prequential_auc"))
    assert math.isnan(sample(metrics, "streamtune_prequential_loss"))
    monitor = PrequentialMonitor(PageHinkley(), metrics, on_drift=lambda: None)
    monitor.record(np.array([1.0, 1.0]), np.array([0.8, 0.6]))  # one class only: AUC undefined
    assert math.isnan(sample(metrics, "streamtune_prequential_auc"))
    assert 0 < sample(metrics, "streamtune_prequential_loss") < 1
    monitor.record(np.array([0.0]), np.array([0.1]))
    assert sample(metrics, "streamtune_prequential_auc") == 1.0
