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

The trimmed mean's standard error decides, for a family given a noise allowance (the hybrid),
when a candidate becomes the new reference: only when the window shows it better beyond its
noise. A reference adopted on any candidate that merely scored lower on the window is the
luckiest of many near-equal versions, and compared again on the same examples it keeps that
luck (the winner's curse): later, equally good candidates then fail the budget against it.

References
----------
Tukey, J. W. & McLaughlin, D. H. (1963). Less vulnerable confidence and significance
procedures for location based on a single sample. Sankhyā A 25, 331-352.
DeLong, E. R., DeLong, D. M. & Clarke-Pearson, D. L. (1988). Comparing the areas under two or
more correlated ROC curves: a nonparametric approach. Biometrics 44, 837-845.
"""

from __future__ import annotations

import math

import numpy as np


def trimmed_standard_error(values: np.ndarray, trim: float) -> float:
    """Standard error of the ``trim``-trimmed mean: the winsorized standard deviation over
    ``(1 - 2 g / n) sqrt(n)`` (Tukey & McLaughlin 1963); 0 for fewer than 2 values.

    >>> trimmed_standard_error(np.full(10, 0.3), 0.1) < 1e-12
    True
    >>> round(trimmed_standard_error(np.array([-9.0, 0, 1, 0, 1, 0, 1, 0, 1, 9]), 0.1), 4)
    0.2083
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    cut = math.floor(trim * n)
    if n < 2 or n - 2 * cut < 1:
        return 0.0
    winsorized = np.clip(ordered, ordered[cut], ordered[n - cut - 1])
    return float(winsorized.std(ddof=1) / ((1 - 2 * cut / n) * math.sqrt(n)))


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
