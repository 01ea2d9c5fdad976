"""What every rank of the group agrees on at each step, from what each rank reports.

Every step is collective: each rank reports its batch's event ids (none when it had no batch)
and its wishes, and every rank derives the same :class:`GroupStep` from the same reports.
Deduplication is group-wide: the ids are routed in rank order through one
:class:`~streamtune.trainer.dedupe.RecentIds` that every rank holds identically (loaded from the
same version, updated with the same ids), so an event re-delivered to another partition, and
so to another rank, is still trained once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.routing import Routes, route


@dataclass(frozen=True)
class StepReport:
    """One rank's report for a step."""

    event_ids: tuple[str, ...] = ()  # of its batch; empty without one (or with a stale one)
    stop: bool = False  # it was asked to stop
    drift: bool = False  # its drift detector fired since the last step
    publish_due: bool = False  # its publish schedule says a version is due
    pending: bool = False  # it consumed batches since the last version
    lineage_moved: bool = False  # LATEST no longer names the group's version (rank 0 reads it)


@dataclass(frozen=True)
class GroupStep:
    """The step as every rank sees it: each rank's routes, and the group's decisions."""

    routes: tuple[Routes, ...]
    stop: bool
    drift: bool
    publish: bool
    pending: bool
    follow_lineage: bool

    def trained(self, rank: int) -> int:
        return int(self.routes[rank].to_train.size)

    @property
    def trained_by_group(self) -> int:
        return sum(int(routes.to_train.size) for routes in self.routes)


class _Ids:
    """Just the event ids of a batch, which is all routing reads."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = list(event_ids)

    def __len__(self) -> int:
        return len(self.event_ids)


def agree(reports: Sequence[StepReport], recent: RecentIds, holdout_share: float) -> GroupStep:
    """The group's step from every rank's report; adds every fresh id to ``recent``.

    >>> recent = RecentIds(100)
    >>> step = agree([StepReport(("a", "b")), StepReport(("b", "c"), publish_due=True)], recent, 0.0)
    >>> [r.to_train.tolist() for r in step.routes], step.trained_by_group, step.publish
    ([[0, 1], [1]], 3, True)
    """
    routes = tuple(route(_Ids(report.event_ids), recent, holdout_share) for report in reports)  # type: ignore[arg-type]
    return GroupStep(
        routes=routes,
        stop=any(report.stop for report in reports),
        drift=any(report.drift for report in reports),
        publish=any(report.publish_due for report in reports),
        pending=any(report.pending for report in reports),
        follow_lineage=reports[0].lineage_moved,
    )
