from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamtune.evaluation import Breakdown, EvaluationError, RunRecord, score_contender
from streamtune.evaluation.report import results_markdown, write_report

DAY_MS = 86_400_000


def results(timestamps: bool = True) -> list:
    labels = [0, 1] * 10
    ts = [1_500_000_000_000 + i * DAY_MS for i in range(20)] if timestamps else None
    return [
        score_contender("frozen", labels, [0.5] * 20, Breakdown(window=5, timestamps=ts), RunRecord(wall_seconds=0.1)),
        score_contender(
            "river_fm",
            labels,
            [0.3, 0.7] * 10,
            Breakdown(window=5, timestamps=ts, cold=[True] * 4 + [False] * 16),
            RunRecord(wall_seconds=2.25, params={"chunk": 1}),
        ),
    ]


def test_markdown_table_has_one_row_per_contender() -> None:
    text = results_markdown(results(), {"events": "events.jsonl", "window": 5})

    assert "- events: events.jsonl" in text
    assert "| frozen | — | 20 | 0.5000 | 0.6931 | — | — | — | 0.5000 | 0.5000 | 0.1 |" in text
    assert "| river_fm | 1 | 20 | 1.0000 | 0.3567 | 4 | 1.0000 | 0.3567 | 1.0000 | 1.0000 | 2.2 |" in text


def test_report_writes_json_markdown_and_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    files = write_report(results(), tmp_path / "out", meta={"seed": 0})

    document = json.loads(files.json.read_text(encoding="utf-8"))
    assert document["meta"] == {"seed": 0}
    assert list(document["contenders"]) == ["frozen", "river_fm"]
    assert document["contenders"]["river_fm"]["auc"] == 1.0
    assert document["contenders"]["river_fm"]["cold"]["n"] == 4
    assert document["contenders"]["frozen"]["cold"] is None
    assert len(document["contenders"]["frozen"]["windows"]) == 4
    assert "| river_fm |" in files.markdown.read_text(encoding="utf-8")
    assert files.plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_falls_back_to_window_index_and_tolerates_undefined_auc(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    one_class = score_contender("river_logreg", [1] * 6, [0.6] * 6, Breakdown(window=3))
    files = write_report([*results(timestamps=False), one_class], tmp_path)

    assert files.plot.stat().st_size > 0
    assert "| river_logreg | — | 6 | — |" in files.markdown.read_text(encoding="utf-8")


def test_duplicate_contender_names_are_refused(tmp_path: Path) -> None:
    twice = results()[:1] * 2
    with pytest.raises(EvaluationError, match="unique"):
        write_report(twice, tmp_path)
