"""Where the ingest thread starts reading each partition, and which offsets it commits: pure
functions of the trained position and what the group has committed, no Kafka I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, TopicPartition


@dataclass(frozen=True)
class TrainedPosition:
    """Where the model's training stands: ``"topic:partition"`` → next offset to train.

    ``from_lineage`` is True once a version exists: a partition ``offsets`` does not name was
    then never read by the lineage and starts at its beginning. Without a lineage, such a
    partition starts at the group's committed offset (a store created for an existing group).
    """

    offsets: dict[str, int]
    from_lineage: bool

    def needs_committed(self, key: str) -> bool:
        """Whether partition ``key`` starts at the group's committed offset."""
        return key not in self.offsets and not self.from_lineage

    def start_offset(self, key: str, committed: dict[str, int]) -> int:
        """The offset partition ``key`` is read from (``committed``: the group's offsets).

        >>> position = TrainedPosition({"t:0": 7}, from_lineage=False)
        >>> position.start_offset("t:0", {}), position.start_offset("t:1", {"t:1": 3})
        (7, 3)
        >>> position.start_offset("t:2", {}) == OFFSET_BEGINNING
        True
        >>> TrainedPosition({}, from_lineage=True).start_offset("t:1", {"t:1": 3}) == OFFSET_BEGINNING
        True
        """
        if key in self.offsets:
            return self.offsets[key]
        if self.from_lineage:
            return OFFSET_BEGINNING
        stored = committed.get(key, -1)
        return stored if stored >= 0 else OFFSET_BEGINNING


PositionSource = Callable[[], TrainedPosition]


def commit_partitions(offsets: dict[str, int], assigned: set[str]) -> list[TopicPartition]:
    """The offsets (by ``"topic:partition"``) this consumer may commit: only its assigned ones.

    >>> [(tp.topic, tp.partition, tp.offset) for tp in commit_partitions({"a:b:0": 5, "x:1": 2}, {"a:b:0"})]
    [('a:b', 0, 5)]
    """
    return [
        TopicPartition(topic, int(partition), offset)
        for key, offset in offsets.items()
        if key in assigned
        for topic, _, partition in [key.rpartition(":")]
    ]
