"""Freshness of the served model at the moment each event was scored.

Two lags per scored event: in events, how many events of the stream came after the last one the
serving version was trained on (``position - covered``), and in event time, how far the event's
timestamp lies after the version's data watermark (the newest event time it was trained on).
A contender that learns every event before the next one is scored has lag 0; a frozen model's
lag grows with the stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

from streamtune.evaluation.errors import EvaluationError

_MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class Freshness:
    """Summary of the lags of one contender over its scored events.

    ``lag_hours_median`` is ``None`` when no serving version had a data watermark (events
    without timestamps, or the base model).
    """

    lag_events_mean: float
    lag_events_median: float
    lag_events_max: int
    lag_hours_median: float | None
    versions_served: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def freshness(
    positions: ArrayLike,
    covered: ArrayLike,
    versions: ArrayLike,
    event_ts: ArrayLike | None = None,
    watermarks: ArrayLike | None = None,
) -> Freshness:
    """Summarise the lags of the scored events.

    Parameters
    ----------
    positions
        Stream position of each scored event.
    covered
        Per event, how many leading events of the stream the serving version was trained on.
    versions
        Per event, the number of the serving version.
    event_ts, watermarks
        Per event, its time and the serving version's data watermark (epoch ms; a negative
        watermark means none).

    Examples
    --------
    >>> f = freshness([10, 11, 12, 13], [10, 10, 12, 12], [1, 1, 2, 2])
    >>> f.lag_events_mean, f.lag_events_max, f.versions_served
    (0.5, 1, 2)
    """
    position = np.asarray(positions, dtype=np.int64)
    cover = np.asarray(covered, dtype=np.int64)
    if position.shape != cover.shape or position.ndim != 1 or position.size == 0:
        raise EvaluationError("freshness needs one position and one covered count per scored event")
    lag = position - cover
    if (lag < 0).any():
        raise EvaluationError("a version claims to cover an event it was scored on: scoring was not prequential")
    hours = None
    if event_ts is not None and watermarks is not None:
        ts = np.asarray(event_ts, dtype=np.int64)
        marks = np.asarray(watermarks, dtype=np.int64)
        known = marks >= 0
        if known.any():
            hours = float(np.median((ts[known] - marks[known]) / _MS_PER_HOUR))
    return Freshness(
        lag_events_mean=float(lag.mean()),
        lag_events_median=float(np.median(lag)),
        lag_events_max=int(lag.max()),
        lag_hours_median=hours,
        versions_served=len(np.unique(np.asarray(versions))),
    )
