"""Each rank's part of a version, and rank 0's merge of them into one version's bookkeeping.

Every rank sends its :class:`RankShare`: the next offset of each partition it reads, what it
did since the last version (its :class:`~streamtune.trainer.versions.ledger.VersionLedger`), and
whether its dead letters are all acknowledged. Rank 0 writes one manifest holding every
partition's offset from every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from streamtune.checkpoints import Manifest
from streamtune.trainer.versions.ledger import VersionLedger


@dataclass(frozen=True)
class RankShare:
    """One rank's part of the next version."""

    position: dict[str, int]  # "topic:partition" → next offset, for this rank's partitions
    ledger: VersionLedger
    undelivered: int  # dead letters its producer could not get acknowledged


def own_position(position: dict[str, int], partitions: Sequence[int], topic: str) -> dict[str, int]:
    """The entries of ``position`` for ``partitions`` of ``topic``.

    >>> own_position({"t:0": 4, "t:1": 9, "u:0": 2}, (1,), "t")
    {'t:1': 9}
    """
    mine = {f"{topic}:{partition}" for partition in partitions}
    return {key: offset for key, offset in position.items() if key in mine}


def merged_position(base: dict[str, int], shares: Sequence[RankShare]) -> dict[str, int]:
    """The group's position: the last version's offsets, each rank's own partitions updated.

    A partition no rank reads now keeps the offset the last version recorded.

    >>> merged_position({"t:0": 1, "t:1": 1, "t:2": 5}, [RankShare({"t:0": 3}, VersionLedger(), 0),
    ...                                                   RankShare({"t:1": 4}, VersionLedger(), 0)])
    {'t:0': 3, 't:1': 4, 't:2': 5}
    """
    position = dict(base)
    for share in shares:
        position.update(share.position)
    return position


def merged_ledger(ledgers: Sequence[VersionLedger]) -> VersionLedger:
    """One ledger for the group: every rank's trained, discarded, held-out and duplicate events."""
    merged = VersionLedger()
    for ledger in ledgers:
        merged.batches += ledger.batches
        merged.examples += ledger.examples
        merged.trained.extend(ledger.trained)
        merged.discarded.extend(ledger.discarded)
        merged.held_out += ledger.held_out
        merged.duplicates += ledger.duplicates
        merged.last_loss = ledger.last_loss if ledger.last_loss is not None else merged.last_loss
        merged.data_watermark_ms = _pick(max, merged.data_watermark_ms, ledger.data_watermark_ms)
        merged.produced_watermark_ms = _pick(max, merged.produced_watermark_ms, ledger.produced_watermark_ms)
        merged.produced_oldest_ms = _pick(min, merged.produced_oldest_ms, ledger.produced_oldest_ms)
    return merged


class Outcome(Enum):
    """What became of a publish step, as rank 0 tells every rank."""

    PUBLISHED = "published"
    REJECTED = "rejected"  # the gate refused the candidate
    RESTORE = "restore"  # …and too often in a row: every rank puts the published weights back
    FAILED = "failed"  # nothing written (the store or Kafka failed): retried later
    LINEAGE_MOVED = "lineage moved"  # a rollback moved LATEST: the group follows it


@dataclass(frozen=True)
class PublishResult:
    """Rank 0's answer after a publish step; ``manifest`` is set when published."""

    outcome: Outcome
    manifest: Manifest | None = None


def _pick(choose: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else choose(a, b)
