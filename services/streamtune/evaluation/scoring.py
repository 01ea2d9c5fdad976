"""Prequential scores: ROC AUC and log-loss, overall and per window of the event stream.

The one module of scoring functions: the evaluation, the trainer's prequential monitor and its
quality gate all score with these. Pure numpy, no I/O. Every contender (transformer or River
baseline) hands over its per-event labels and predicted probabilities in stream order, so all
are scored by the same code.

References
----------
Fawcett, T. (2006). An introduction to ROC analysis. Pattern Recognition Letters 27(8):861-874
(AUC as the Mann-Whitney statistic, ties counted as one half).
Gama, J., Sebastião, R., Rodrigues, P. P. (2013). On evaluating stream learning algorithms.
Machine Learning 90(3):317-346 (prequential evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.score_options import Breakdown, RunRecord

# Same clipping as River's LogLoss, so both report identical values on identical predictions.
LOGLOSS_EPS = 1e-15


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve from ranks; tied scores count one half.

    Parameters
    ----------
    labels
        0/1 (or bool) per event.
    scores
        Any real score per event; higher means "more likely positive".

    Returns
    -------
    float or None
        The AUC, or ``None`` when only one class is present (it is undefined then).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([1, 1], [0.2, 0.9]) is None
    True
    """
    y, s = _validated(labels, scores)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ordered = s[order]
    # Runs of equal scores share the mean of the 1-based ranks they span.
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ordered)) + 1))
    stops = np.concatenate((starts[1:], [s.size]))
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + stops + 1) / 2.0, stops - starts)
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_losses(labels: ArrayLike, probabilities: ArrayLike, eps: float = LOGLOSS_EPS) -> NDArray[np.float64]:
    """Per-example binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``; soft labels
    in ``[0, 1]`` allowed. No validation: the trainer calls it on every batch.

    Examples
    --------
    >>> log_losses([1.0, 0.0], [0.5, 0.5]).round(4).tolist()
    [0.6931, 0.6931]
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1.0 - eps)
    return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))


def log_loss(labels: ArrayLike, probabilities: ArrayLike, eps: float = LOGLOSS_EPS) -> float | None:
    """Mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``.

    Returns ``None`` for an empty input. Raises :class:`EvaluationError` when a probability lies
    outside ``[0, 1]``: such a value is a bug in the contender, not something to clip away.

    Examples
    --------
    >>> round(log_loss([1, 0], [0.8, 0.3]), 6)
    0.289909
    """
    y, p = _validated(labels, probabilities)
    if y.size == 0:
        return None
    if p.min() < 0.0 or p.max() > 1.0:
        raise EvaluationError("probabilities must lie in [0, 1]; got a value outside")
    return float(np.mean(log_losses(y, p, eps)))


@dataclass(frozen=True)
class WindowScore:
    """Scores of one slice ``[start, stop)`` of the stream.

    ``label`` names the slice for people: ``"0-4999"`` for an event window, ``"2004"`` for a
    calendar year. ``first_ts``/``last_ts`` (epoch ms) are set when timestamps were given.
    """

    index: int
    label: str
    start: int
    stop: int
    n: int
    positives: int
    auc: float | None
    logloss: float | None
    first_ts: int | None = None
    last_ts: int | None = None


def windowed_scores(
    labels: ArrayLike,
    probabilities: ArrayLike,
    *,
    window: int = 5000,
    timestamps: ArrayLike | None = None,
) -> list[WindowScore]:
    """Score consecutive windows of ``window`` events; the last one may be shorter.

    Parameters
    ----------
    labels, probabilities
        Per event, in stream order.
    window
        Events per window.
    timestamps
        Optional epoch milliseconds per event, recorded as each window's first/last time.
    """
    if window < 1:
        raise EvaluationError(f"window must be >= 1 event, got {window}")
    y, p = _validated(labels, probabilities)
    ts = _timestamps(timestamps, y.size)
    windows = []
    for index, start in enumerate(range(0, y.size, window)):
        stop = min(start + window, y.size)
        windows.append(_score_slice((y, p, ts), index, f"{start}-{stop - 1}", range(start, stop)))
    return windows


def yearly_scores(labels: ArrayLike, probabilities: ArrayLike, timestamps: ArrayLike) -> list[WindowScore]:
    """Score each UTC calendar year of a time-ordered stream, oldest first.

    ``start``/``stop`` are positions of the year's first and one-past-last event; the events
    must be in time order (as a replayed stream is), or a year would not be contiguous.
    """
    y, p = _validated(labels, probabilities)
    ts = _timestamps(timestamps, y.size)
    if ts is None:
        raise EvaluationError("per-year scores need the events' timestamps")
    if ts.size and np.any(np.diff(ts) < 0):
        raise EvaluationError("yearly scores need events in time order; sort by timestamp")
    years = ts.astype("datetime64[ms]").astype("datetime64[Y]").astype(np.int64) + 1970
    starts = np.concatenate(([0], np.flatnonzero(np.diff(years)) + 1)) if ts.size else []
    windows = []
    for index, start in enumerate(starts):
        stop = int(starts[index + 1]) if index + 1 < len(starts) else y.size
        windows.append(_score_slice((y, p, ts), index, str(years[start]), range(int(start), stop)))
    return windows


@dataclass
class ContenderResult:
    """One contender's prequential scores over a stream.

    ``windows`` are event windows, ``years`` calendar years (empty when not computed), ``cold``
    the scores of the cold events (see :func:`cold_events`; None when not computed);
    ``params`` records how the contender was configured, ``wall_seconds`` how long it ran.
    """

    name: str
    n: int
    auc: float | None
    logloss: float | None
    windows: list[WindowScore] = field(default_factory=list)
    years: list[WindowScore] = field(default_factory=list)
    wall_seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    cold: WindowScore | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN never appears: undefined scores are ``None``)."""
        return asdict(self)


def score_contender(
    name: str,
    labels: ArrayLike,
    probabilities: ArrayLike,
    breakdown: Breakdown | None = None,
    run: RunRecord | None = None,
) -> ContenderResult:
    """Overall scores, and those ``breakdown`` asks for (default: per window of 5000 events);
    ``run`` is recorded as is."""
    breakdown, run = breakdown or Breakdown(), run or RunRecord()
    window, timestamps, by_year, cold = breakdown.window, breakdown.timestamps, breakdown.by_year, breakdown.cold
    y, p = _validated(labels, probabilities)
    if by_year and timestamps is None:
        raise EvaluationError("per-year scores need the events' timestamps")
    cold_score = None
    if cold is not None:
        mask = np.asarray(cold, dtype=bool)
        if mask.shape != y.shape:
            raise EvaluationError(f"need one cold flag per event: {mask.shape} for {y.shape}")
        yc, pc = y[mask], p[mask]
        cold_score = WindowScore(
            0, "cold", 0, int(y.size), int(yc.size), int(yc.sum()), roc_auc(yc, pc), log_loss(yc, pc)
        )
    return ContenderResult(
        cold=cold_score,
        name=name,
        n=int(y.size),
        auc=roc_auc(y, p),
        logloss=log_loss(y, p),
        windows=windowed_scores(y, p, window=window, timestamps=timestamps),
        years=yearly_scores(y, p, timestamps) if by_year else [],
        wall_seconds=run.wall_seconds,
        params=dict(run.params),
    )


def cold_events(item_ids: Sequence[Any], sightings: int = 3) -> NDArray[np.bool_]:
    """Per event, whether its item had been seen fewer than ``sightings`` times before it
    (counting from the first event given): the events where an ID model knows least.

    >>> cold_events(["a", "b", "a", "a", "a"], sightings=2).tolist()
    [True, True, True, False, False]
    """
    seen: dict[Any, int] = {}
    mask = np.zeros(len(item_ids), dtype=bool)
    for position, item in enumerate(item_ids):
        count = seen.get(item, 0)
        mask[position] = count < sightings
        seen[item] = count + 1
    return mask


_Scored = tuple[NDArray[np.int8], NDArray[np.float64], NDArray[np.int64] | None]


def _score_slice(scored: _Scored, index: int, label: str, span: range) -> WindowScore:
    """Scores of the events at positions ``span`` of ``scored`` (labels, probabilities, times)."""
    y, p, ts = scored
    start, stop = span.start, span.stop
    ys, ps = y[start:stop], p[start:stop]
    return WindowScore(
        index=index,
        label=label,
        start=start,
        stop=stop,
        n=int(ys.size),
        positives=int(ys.sum()),
        auc=roc_auc(ys, ps),
        logloss=log_loss(ys, ps),
        first_ts=None if ts is None else int(ts[start]),
        last_ts=None if ts is None else int(ts[stop - 1]),
    )


def _validated(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.size != s.size:
        raise EvaluationError(f"labels and scores must be 1-D and of equal length, got {y.shape} and {s.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise EvaluationError("labels must be 0/1 or booleans")
    if y.size and not np.isfinite(s).all():
        raise EvaluationError("scores must be finite; a contender produced NaN or infinity")
    return y.astype(np.int8), s


def _timestamps(timestamps: ArrayLike | None, size: int) -> NDArray[np.int64] | None:
    if timestamps is None:
        return None
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.shape != (size,):
        raise EvaluationError(f"need one timestamp per event: {ts.shape[0]} for {size} events")
    return ts


def is_defined(value: float | None) -> bool:
    """Whether a score exists (is neither ``None`` nor NaN)."""
    return value is not None and not math.isnan(value)
