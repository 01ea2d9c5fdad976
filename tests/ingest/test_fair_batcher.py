"""The fair batcher's wait for every partition, and the switch that turns it off."""

from streamtune.ingest.fair_batcher import FairBatcher
from tests.support.clock import ManualClock

DAY_S = 86_400.0


def _one_partition_full(fair_wait: bool) -> FairBatcher[str, int]:
    """A batcher tracking two partitions, with a full batch queued on the first alone."""
    batcher: FairBatcher[str, int] = FairBatcher(
        max_size=4, max_latency_s=DAY_S, capacity=16, clock=ManualClock(), fair_wait=fair_wait
    )
    batcher.track(["p0", "p1"])
    for item in range(4):
        batcher.add("p0", item)
    return batcher


def test_a_full_batch_waits_for_the_other_partitions_while_busy_or_settling():
    batcher = _one_partition_full(fair_wait=True)
    assert not batcher.due()  # the first batch after an assignment settles for the latency
    assert batcher.seconds_until_due() == DAY_S
    assert not batcher.due(busy=True)
    batcher.add("p1", 10)
    assert batcher.due(busy=True)
    assert batcher.take() == [0, 10, 1, 2]


def test_without_the_fair_wait_a_full_batch_closes_by_size_alone():
    batcher = _one_partition_full(fair_wait=False)
    assert batcher.due()
    assert batcher.due(busy=True)
    assert batcher.take() == [0, 1, 2, 3]
    batcher.add("p1", 10)
    assert not batcher.due(busy=True)  # one item of four: only the latency closes it
    assert batcher.seconds_until_due(busy=True) == DAY_S
