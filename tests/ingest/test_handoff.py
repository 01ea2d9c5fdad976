"""The hand-off between the ingest thread and the training step: a full queue makes the ingest
thread wait for room (no spinning), and a taken batch wakes it at once."""

from __future__ import annotations

import threading

from streamtune.ingest.handoff import BatchHandoff
from streamtune.ingest.training_batch import BatchBuilder


def empty_batch(offset: int):
    return BatchBuilder(None).build([], offsets={"events:0": offset})


def test_a_full_hand_off_refuses_at_once_and_accepts_when_the_trainer_takes_a_batch():
    handoff = BatchHandoff(1)
    assert handoff.offer(empty_batch(1))
    assert not handoff.offer(empty_batch(2))  # no wait asked: refused
    assert not handoff.offer(empty_batch(2), timeout_s=0.05)  # nobody takes: refused after the wait

    taker = threading.Timer(0.1, lambda: handoff.take(timeout_s=1.0))
    taker.start()
    try:
        assert handoff.offer(empty_batch(2), timeout_s=10.0)  # woken by the take, not by the timeout
    finally:
        taker.join()
    taken = handoff.take(timeout_s=1.0)
    assert taken is not None and taken.offsets == {"events:0": 2}
