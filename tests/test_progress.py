"""Progress of long jobs: a log line with rate and ETA off a terminal, nothing when disabled."""

from __future__ import annotations

import io

from streamtune.progress import Progress, ProgressOutput, tracked


def test_off_a_terminal_progress_is_a_periodic_log_line_with_rate_and_eta():
    lines: list[str] = []
    output = ProgressOutput(every_s=0, stream=io.StringIO(), log=lines.append)
    with Progress("replay", 10, "events", output) as progress:
        assert list(tracked(range(4), progress)) == [0, 1, 2, 3]
    assert len(lines) == 4
    assert lines[-1].startswith("replay: 4/10 events (40%), ") and "/s, ETA " in lines[-1]


def test_without_a_total_it_reports_the_count_and_rate():
    lines: list[str] = []
    with Progress("datasets movielens", None, "events", ProgressOutput(every_s=0, log=lines.append)) as progress:
        progress.update(250)
    assert lines[0].startswith("datasets movielens: 250 events, ")


def test_disabled_progress_says_nothing():
    lines: list[str] = []
    with Progress("replay", 3, "events", ProgressOutput(every_s=0, log=lines.append, enabled=False)) as progress:
        progress.update(3)
    assert lines == []
