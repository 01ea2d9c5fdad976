from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from streamtune.datasets.cli import add_datasets_command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamtune")
    add_datasets_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_movielens_command_writes_events_and_prints_a_summary(
    latest_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    args = parse("datasets", "movielens", str(latest_dir), "-o", str(out), "--limit", "5")

    assert args.handler(args) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["event_id"] for line in lines] == [
        "ml-1-1",
        "ml-2-1",
        "ml-2-3",
        "ml-1-2",
        "ml-1-3",
    ]
    printed = capsys.readouterr().out
    assert "wrote 5 events" in printed
    assert "labels: 3 positive (60.0%), 2 negative" in printed
    assert "time span: 1970-01-01 00:16:40 .. 1970-01-01 00:50:00 (UTC)" in printed


def test_since_accepts_dates_and_datetimes(latest_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    args = parse("datasets", "movielens", str(latest_dir), "-o", str(out), "--since", "1970-01-01T01:23:00")

    assert args.handler(args) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_unknown_directory_fails_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("datasets", "movielens", str(tmp_path), "-o", str(tmp_path / "e.jsonl"))

    assert args.handler(args) == 1
    assert "not a MovieLens directory" in capsys.readouterr().err
    assert not (tmp_path / "e.jsonl").exists()


@pytest.mark.parametrize("option", [["--since", "last week"], ["--limit", "-3"]])
def test_bad_options_are_refused_by_the_parser(option: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse("datasets", "movielens", "dir", "-o", "out.jsonl", *option)
    assert exit_info.value.code == 2
