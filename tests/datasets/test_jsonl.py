from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamtune.datasets import DatasetError, read_jsonl, write_jsonl


def test_round_trip_preserves_order_and_unicode(tmp_path: Path) -> None:
    events = [{"event_id": f"e{i}", "text": "Amélie (2001) | 日本"} for i in range(3)]
    path = tmp_path / "out" / "events.jsonl"

    assert write_jsonl(iter(events), path) == 3
    assert list(read_jsonl(path)) == events
    assert "Amélie" in path.read_text(encoding="utf-8")


def test_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    def broken() -> Iterator[dict]:
        yield {"event_id": "e1"}
        raise RuntimeError("source failed")

    path = tmp_path / "events.jsonl"
    with pytest.raises(RuntimeError):
        write_jsonl(broken(), path)
    assert list(tmp_path.iterdir()) == []


def test_reading_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n', encoding="utf-8")

    with pytest.raises(DatasetError, match=r"events\.jsonl:3: expected a JSON object"):
        list(read_jsonl(path))
    with pytest.raises(DatasetError, match="no such events file"):
        list(read_jsonl(tmp_path / "missing.jsonl"))
