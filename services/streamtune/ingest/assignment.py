"""The partitions the ingest thread's consumer holds, where it reads each, and its commits.

On every assignment (and on a rewind) each partition is moved to the *trained* position — the
model's own state, not the group's committed offsets, decides where training resumes (after a
rollback the committed offsets are ahead of the lineage and would skip events). With a ``probe``
(a factory of throwaway consumers), a trained offset beyond the partition's end is noticed
(:mod:`streamtune.ingest.partition_ends`): the topic was deleted and created again, or a broker
lost its storage, and that partition starts at the new topic's beginning instead of skipping its
first records. Used from the ingest thread only.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamtune.checkpoints.manifest import offset_key
from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.partition_ends import ProbeFactory, restart_offsets
from streamtune.ingest.positions import PositionSource, commit_partitions

logger = logging.getLogger(__name__)


class Assignment:
    """Assigned partitions, the next offset read of each (valid record or not), and the offsets
    already handed off in a batch."""

    def __init__(self, handoff: BatchHandoff, positions: PositionSource, probe: ProbeFactory | None = None) -> None:
        self._handoff = handoff
        self._positions = positions
        self._probe = probe
        self.partitions: list[TopicPartition] = []
        self.consumed: dict[str, int] = {}  # next offset per partition, valid or not
        self.reported: dict[str, int] = {}  # offsets already handed off in a batch

    def read(self, key: str, offset: int) -> None:
        """The record at ``offset`` of the partition ``key`` (:func:`offset_key`) was read."""
        self.consumed[key] = offset + 1

    def mark_reported(self) -> None:
        self.reported = dict(self.consumed)

    def unreported(self) -> bool:
        """Whether records were read (all invalid ones) that no batch has reported yet."""
        return self.consumed != self.reported

    def assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The rebalance callback: take ``partitions``, each at the trained position."""
        self._start_at_trained_position(consumer, partitions)
        self.mark_reported()
        consumer.assign(partitions)
        consumer.resume(partitions)  # a pause for a full hand-off must not outlive the rebalance
        self.partitions = list(partitions)
        logger.info("assigned %s", describe(partitions))

    def revoke(self) -> None:
        self.consumed.clear()
        self.reported.clear()
        self.partitions = []

    def rewind(self, consumer: Consumer) -> bool:
        """Seek every assigned partition back to the trained position; False if the consumer
        cannot seek yet (e.g. a fetcher not started): try again on the next step."""
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in self.partitions]
        self._start_at_trained_position(consumer, partitions)
        self.mark_reported()
        try:
            for tp in partitions:
                consumer.seek(tp)
        except KafkaException as error:
            logger.warning("cannot rewind yet (%s); retrying", error)
            return False
        consumer.resume(self.partitions)
        logger.info("rewound to the trained position: %s", describe(partitions) or "no partition assigned yet")
        return True

    def commit(self, consumer: Consumer, offsets: dict[str, int]) -> None:
        """Commit the assigned partitions' ``offsets`` (durable in a version) to the group."""
        partitions = commit_partitions(offsets, {offset_key(tp.topic, tp.partition) for tp in self.partitions})
        if not partitions:
            return
        try:
            consumer.commit(offsets=partitions, asynchronous=False)
        except Exception as error:  # the store's manifest is the source of truth; retry next time
            logger.warning("offset commit failed (will retry with the next version): %s", error)

    def _start_at_trained_position(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Set each partition's offset to where training stands (see the module doc)."""
        with self._handoff.quiesced():
            trained = self._positions()
        keys = [offset_key(tp.topic, tp.partition) for tp in partitions]
        unknown = [tp for tp, key in zip(partitions, keys, strict=True) if trained.needs_committed(key)]
        stored = consumer.committed(unknown, timeout=10) if unknown else []
        committed = {offset_key(tp.topic, tp.partition): tp.offset for tp in stored}
        for tp, key in zip(partitions, keys, strict=True):
            tp.offset = trained.start_offset(key, committed)
        restarts = restart_offsets(consumer, self._probe, partitions) if self._probe else {}
        for tp, key in zip(partitions, keys, strict=True):
            if key in restarts:
                logger.warning(
                    "%s ends before offset %d, where training stands: the topic was recreated (or its broker "
                    "lost its data); reading the new partition from its beginning",
                    key,
                    tp.offset,
                )
                tp.offset = restarts[key]
            if tp.offset >= 0:
                self.consumed[key] = tp.offset
            else:
                self.consumed.pop(key, None)


def describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in partitions)
