"""The publish cadence as a pure rule: a version per N batches, folded under a backlog for at
most the delay or until publishing is at most its share of the time, failures retried when
idle. A hand-driven clock, no broker."""

from __future__ import annotations

import pytest

from streamtune.trainer.versions.cadence import PublishSchedule
from tests.support.clock import ManualClock


def test_without_a_delay_every_n_batches_is_due_whatever_waits():
    schedule = PublishSchedule(every_batches=2, max_delay_ms=0, clock=ManualClock())
    assert [schedule.due(batches, waiting=4) for batches in (0, 1, 2, 3, 4)] == [False, False, True, False, True]


def test_a_held_version_ends_on_the_cadence_so_the_last_group_is_never_left_alone():
    # Two batches a version, and a hold that runs out after the fifth: publishing five would
    # leave the eighth alone, below a version's worth, for ever once the stream pauses.
    clock = ManualClock()
    schedule = PublishSchedule(every_batches=2, max_delay_ms=0, max_share=0.1, clock=clock)
    with schedule.attempt():
        clock.now += 0.1
    clock.now += 1.0  # the hold (0.1 s / 0.1) is spent
    assert not schedule.due(5, waiting=3)
    assert schedule.due(6, waiting=2)


def test_a_backlog_defers_the_version_until_the_delay_after_the_last_attempt():
    clock = ManualClock()
    schedule = PublishSchedule(every_batches=1, max_delay_ms=3000, clock=clock)
    clock.now += 1.0
    assert not schedule.due(1, waiting=3)
    assert schedule.due(1, waiting=0)  # caught up: publish at once
    clock.now += 2.0
    assert schedule.due(1, waiting=3)  # 3 s since the schedule started
    schedule.attempted()
    clock.now += 2.999
    assert not schedule.due(5, waiting=1)
    clock.now += 0.001
    assert schedule.due(5, waiting=1)


def test_a_failed_publish_is_retried_when_idle_after_the_retry_delay_only_with_work_pending():
    clock = ManualClock()
    schedule = PublishSchedule(every_batches=1, max_delay_ms=0, retry_s=5.0, clock=clock)
    assert not schedule.retry_due(1)  # nothing failed
    schedule.failed()
    clock.now += 4.9
    assert not schedule.retry_due(1)
    clock.now += 0.1
    assert schedule.retry_due(1) and not schedule.retry_due(0)
    schedule.succeeded()
    assert not schedule.retry_due(1)


def test_a_backlog_defers_the_version_until_publishing_is_at_most_its_share_of_the_time():
    clock = ManualClock()
    schedule = PublishSchedule(every_batches=1, max_delay_ms=0, max_share=0.1, clock=clock)
    assert schedule.due(1, waiting=3)  # nothing published yet: nothing to amortise
    schedule.attempted()
    clock.now += 0.5  # the gate and the write took half a second
    schedule.finished()
    clock.now += 4.0
    assert not schedule.due(1, waiting=3)  # 0.5 s of 4.5 s: over a tenth
    assert schedule.due(1, waiting=0)  # caught up: publish at once
    clock.now += 0.5
    assert schedule.due(1, waiting=3)  # 0.5 s of 5 s
    schedule.attempted()
    clock.now += 0.01  # a cheap one: the running average (newest 1/4) falls to 0.3775 s
    schedule.finished()
    clock.now += 3.7
    assert not schedule.due(1, waiting=3)
    clock.now += 0.1
    assert schedule.due(1, waiting=3)
    schedule.attempted()
    clock.now += 1.0  # a dearer one counts at once: 10 s before the next
    schedule.finished()
    clock.now += 8.9
    assert not schedule.due(1, waiting=3)
    clock.now += 0.1
    assert schedule.due(1, waiting=3)


@pytest.mark.parametrize(("delay_ms", "share", "hold_s"), [(3000, 0.5, 3.0), (1000, 0.25, 4.0)])
def test_the_longer_of_the_delay_and_the_share_holds(delay_ms, share, hold_s):
    clock = ManualClock(now=0.0)
    schedule = PublishSchedule(every_batches=1, max_delay_ms=delay_ms, max_share=share, clock=clock)
    with schedule.attempt():
        clock.now = 1.0  # an attempt of a second: the share alone would hold 1 / share seconds
    clock.now = hold_s - 0.01
    assert not schedule.due(1, waiting=1)
    clock.now = hold_s
    assert schedule.due(1, waiting=1)


def test_an_idle_loop_publishes_batches_held_back_for_a_backlog_unless_the_gate_refused_them():
    schedule = PublishSchedule(every_batches=2, max_delay_ms=0, max_share=0.1, clock=ManualClock())
    assert not schedule.idle_due(waiting=1, only_discarded=False, held_batches=1)  # not a version's worth
    assert schedule.idle_due(waiting=2, only_discarded=False, held_batches=2)
    schedule.rejected()
    assert not schedule.idle_due(waiting=2, only_discarded=False, held_batches=2)  # give_up_due decides
