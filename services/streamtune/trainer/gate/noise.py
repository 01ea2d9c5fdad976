"""How much two scorings of the same holdout window may differ by chance alone.

The gate compares a candidate with older weights on a few hundred held-out examples. When
the model moves a lot between versions (the hybrid family's per-user rows learn a session in a
few dozen events), two equally good versions rank the window differently, and a fixed AUC
tolerance of 0.01 refuses the newer one on noise: on a window of 256 examples the AUC of the
difference of two such versions has a standard error of about 0.01. DeLong's paired variance
says how far apart two scorings of the same examples may rank by chance; the gate's AUC rule
allows ``noise_z`` of those standard errors beyond its tolerance. For nearly equal models (the
text family's small steps) the error is near zero and the rule is as strict as before; a
candidate that lost its ranking is worse by many standard errors. The log-loss rules are left
as they are: their budget against the reference is what refuses a slow poisoning (measured in
``benchmarks/hybrid_gate.py``, where a noise allowance on them let a long flipped stretch in).

References
----------
DeLong, E. R., DeLong, D. M. & Clarke-Pearson, D. L. (1988). Comparing the areas under two or
more correlated ROC curves: a nonparametric approach. Biometrics 44, 837-845.
"""

from __future__ import annotations

import math

import numpy as np


def auc_placements(labels: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
    """DeLong's structural components: for a positive example, the share of negatives it
    outscores (ties count half); for a negative, the share of positives that outscore it.
    Their means are the AUC; None unless both classes are present and the scores finite.

    >>> auc_placements(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.4, 0.6])).tolist()
    [1.0, 1.0, 0.5, 0.5]
    """
    positive = np.asarray(labels) >= 0.5
    scores = np.asarray(scores, dtype=np.float64)
    if positive.all() or not positive.any() or not np.isfinite(scores).all():
        return None
    negatives, positives = np.sort(scores[~positive]), np.sort(scores[positive])
    placements = np.empty(len(scores))
    below = np.searchsorted(negatives, scores[positive], side="left")
    at_or_below = np.searchsorted(negatives, scores[positive], side="right")
    placements[positive] = (below + at_or_below) / (2.0 * len(negatives))
    above = len(positives) - np.searchsorted(positives, scores[~positive], side="right")
    at_or_above = len(positives) - np.searchsorted(positives, scores[~positive], side="left")
    placements[~positive] = (above + at_or_above) / (2.0 * len(positives))
    return placements


def paired_auc_standard_error(first: np.ndarray, second: np.ndarray, positive: np.ndarray) -> float:
    """Standard error of ``AUC(first) - AUC(second)`` for two scorings of the same examples,
    from their :func:`auc_placements` (DeLong's variance of the paired difference).

    >>> p = auc_placements(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.4, 0.6]))
    >>> paired_auc_standard_error(p, p, np.array([1, 0, 1, 0]) >= 0.5)
    0.0
    """
    difference = np.asarray(first) - np.asarray(second)
    variance = 0.0
    for side in (positive, ~positive):
        if side.sum() > 1:
            variance += float(difference[side].var(ddof=1)) / int(side.sum())
    return math.sqrt(variance)
