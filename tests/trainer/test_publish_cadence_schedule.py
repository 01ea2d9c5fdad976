"""The publish cadence as a pure rule: a version per N batches, folded under a backlog for at
most the delay, failures retried when idle. A hand-driven clock, no broker."""

from __future__ import annotations

from streamtune.trainer.versions.cadence import PublishSchedule
from tests.support.clock import ManualClock


def test_without_a_delay_every_n_batches_is_due_whatever_waits():
    schedule = PublishSchedule(every_batches=2, max_delay_ms=0, clock=ManualClock())
    assert [schedule.due(batches, waiting=4) for batches in (0, 1, 2, 3)] == [False, False, True, True]


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
