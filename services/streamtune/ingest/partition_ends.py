"""Does a trained offset lie past its partition's end? Then the topic was recreated.

A topic deleted and created again, or a broker that lost its storage, leaves the trained
position (from the newest version) past the end of a new, shorter partition. Reading on from
there would skip the new partition's first records — Tansu answers such a fetch with no records
rather than "offset out of range", so no reset to the beginning ever comes — so such a partition
is read from its beginning instead.

The end must be exact: one too low would re-read records already trained. Tansu answers
ListOffsets(latest) with one past the *base* offset of the partition's last record batch, too
low whenever that batch holds several records, while a fetch response's high watermark is
exact. ListOffsets is never too high, so an answer at or past the offset is trusted; below it, a
throwaway consumer (it never joins the group) fetches the partition once to learn the true end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamtune.checkpoints.manifest import offset_key

logger = logging.getLogger(__name__)

ProbeFactory = Callable[[], Consumer]


def restart_offsets(
    consumer: Consumer, probe: ProbeFactory, partitions: list[TopicPartition], timeout_s: float = 5.0
) -> dict[str, int]:
    """``"topic:partition"`` → the first offset, for each of ``partitions`` whose offset lies past
    the partition's end. A partition whose end cannot be learned keeps its offset."""
    suspects: dict[str, TopicPartition] = {}
    for tp in partitions:
        if tp.offset <= 0:
            continue
        try:
            _, listed_end = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
        except KafkaException as error:
            logger.warning("cannot check %s:%d against its end: %s", tp.topic, tp.partition, error)
            continue
        if 0 <= listed_end < tp.offset:
            suspects[offset_key(tp.topic, tp.partition)] = tp
    if not suspects:
        return {}
    fetched = _fetched_watermarks(probe, list(suspects.values()), timeout_s)
    restarts = {}
    for key, tp in suspects.items():
        if key not in fetched:
            logger.warning("cannot learn where %s ends within %.0f s: keeping offset %d", key, timeout_s, tp.offset)
            continue
        first, end = fetched[key]
        if end < tp.offset:
            restarts[key] = first
    return restarts


def _fetched_watermarks(
    probe: ProbeFactory, partitions: list[TopicPartition], timeout_s: float
) -> dict[str, tuple[int, int]]:
    """(first offset, end) of each partition, from a fetch response (OFFSET_BEGINNING if the
    first offset is not reported)."""
    client = probe()
    try:
        client.assign([TopicPartition(tp.topic, tp.partition, tp.offset) for tp in partitions])
        deadline = time.monotonic() + timeout_s
        found: dict[str, tuple[int, int]] = {}
        while True:
            for tp in partitions:
                first, end = client.get_watermark_offsets(tp, cached=True)
                if end >= 0:
                    found[offset_key(tp.topic, tp.partition)] = (first if first >= 0 else OFFSET_BEGINNING, end)
            if len(found) == len(partitions) or time.monotonic() > deadline:
                return found
            client.consume(num_messages=1, timeout=0.1)  # serves the fetch; its records are not used
    finally:
        client.close()
