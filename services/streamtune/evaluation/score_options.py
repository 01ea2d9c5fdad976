"""What a contender's result holds besides its overall scores: how they are broken down
(windows, years, cold events), and what it records of how the contender ran."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Breakdown:
    """Scores besides the overall ones: per window of ``window`` events (``timestamps``, epoch
    milliseconds per event, record each window's first and last time), per calendar year
    (``by_year``; needs the timestamps), and over the cold events (``cold``: a flag per event,
    see :func:`~streamtune.evaluation.scoring.cold_events`)."""

    window: int = 5000
    timestamps: ArrayLike | None = None
    by_year: bool = False
    cold: ArrayLike | None = None


@dataclass(frozen=True)
class RunRecord:
    """What a result records of how its contender ran: wall-clock seconds and parameters."""

    wall_seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
