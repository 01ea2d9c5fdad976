"""The rolling window's figures are computed once per update and always those of the window as
it is: the trainer reads them after every batch and again at every publish."""

from __future__ import annotations

import numpy as np

from streamtune.evaluation.scoring import roc_auc
from streamtune.trainer.monitor.rolling_score import RollingScore, trainer_log_losses


def test_figures_follow_every_update_of_the_window():
    chooser = np.random.default_rng(5)
    score = RollingScore(window=50)
    assert score.auc() is None and np.isnan(score.logloss())
    labels: list[float] = []
    probabilities: list[float] = []
    for _ in range(30):
        new_labels = chooser.integers(0, 2, 8).astype(float).tolist()
        new_scores = chooser.uniform(0.01, 0.99, 8).tolist()
        score.update(new_labels, new_scores)
        labels, probabilities = (labels + new_labels)[-50:], (probabilities + new_scores)[-50:]
        window_labels, window_scores = np.array(labels), np.array(probabilities)
        expected_loss = float(np.mean(trainer_log_losses(window_labels, window_scores)))
        for _ in range(2):  # a second read gives the same figures
            assert score.logloss() == expected_loss
            assert score.auc() == roc_auc(window_labels >= 0.5, window_scores)
        assert score.as_metrics()["prequential_examples"] == len(labels)
