import pytest

from streamtune.ingest.batcher import MicroBatcher
from tests.support.clock import ManualClock


def test_closes_when_full():
    batcher = MicroBatcher(max_size=3, max_latency_s=10, clock=ManualClock())
    assert batcher.add(1) is None
    assert batcher.add(2) is None
    assert batcher.add(3) == [1, 2, 3]
    assert len(batcher) == 0
    assert batcher.seconds_until_due() is None


def test_closes_on_latency_measured_from_first_item():
    clock = ManualClock()
    batcher = MicroBatcher(max_size=100, max_latency_s=1.0, clock=clock)
    batcher.add("a")
    clock.now += 0.6
    batcher.add("b")
    assert batcher.seconds_until_due() == pytest.approx(0.4)
    assert batcher.take_if_due() is None
    clock.now += 0.4
    assert batcher.take_if_due() == ["a", "b"]
    assert batcher.take_if_due() is None


def test_latency_restarts_with_the_next_batch():
    clock = ManualClock()
    batcher = MicroBatcher(max_size=2, max_latency_s=1.0, clock=clock)
    batcher.add(1)
    clock.now += 5
    assert batcher.add(2) == [1, 2]
    batcher.add(3)
    assert batcher.seconds_until_due() == pytest.approx(1.0)


def test_discard_drops_matching_items_and_resets_the_timer_when_empty():
    clock = ManualClock()
    batcher = MicroBatcher(max_size=10, max_latency_s=1.0, clock=clock)
    for item in [("p0", 1), ("p1", 2), ("p0", 3)]:
        batcher.add(item)
    assert batcher.discard(lambda item: item[0] == "p0") == 2
    assert batcher.take() == [("p1", 2)]
    batcher.add(("p0", 4))
    batcher.discard(lambda item: True)
    assert batcher.seconds_until_due() is None


@pytest.mark.parametrize(("size", "latency"), [(0, 1.0), (1, 0.0)])
def test_rejects_nonsense_limits(size, latency):
    with pytest.raises(ValueError):
        MicroBatcher(max_size=size, max_latency_s=latency)
