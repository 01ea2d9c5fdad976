"""Which rank reads which partition of the events topic: a fixed rule, not a group rebalance.

A consumer-group rebalance may move a partition between ranks at any moment, racing the
publish-then-commit protocol; a fixed assignment derived from the partition count and the
group size cannot. Changing the group size between runs changes the rule's answer, and every
rank starts from the newest version's offsets, so partitions move with their positions.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from streamtune.errors import StreamtuneError


def partitions_of_rank(partition_count: int, rank: int, world_size: int) -> tuple[int, ...]:
    """Partition p goes to rank p mod N.

    >>> partitions_of_rank(5, 0, 2), partitions_of_rank(5, 1, 2), partitions_of_rank(2, 2, 3)
    ((0, 2, 4), (1, 3), ())
    """
    return tuple(p for p in range(partition_count) if p % world_size == rank)


def partition_count(admin: AdminClient, topic: str, timeout_s: float = 10.0) -> int:
    """How many partitions ``topic`` has, from the cluster's metadata."""
    metadata = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise StreamtuneError(f"cannot read the partitions of topic {topic}: {getattr(metadata, 'error', None)}")
    return len(metadata.partitions)
