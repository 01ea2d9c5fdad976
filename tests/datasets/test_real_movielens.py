"""The converter on the real ml-latest-small download (skipped where it is absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from streamtune.datasets import movielens_events
from streamtune.events import Event, decode_event

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-latest-small"
KEYS = {"event_id", "event_type", "user_id", "item_id", "ts", "text", "context", "label"}

pytestmark = pytest.mark.skipif(
    not (DATA / "ratings.csv").is_file(), reason="ml-latest-small not found beside the repository"
)


def test_first_2000_events_are_ordered_well_formed_and_leak_free() -> None:
    events = list(movielens_events(DATA, limit=2000))

    assert len(events) == 2000
    for event in events:
        assert set(event) == KEYS
        assert event["event_type"] == "rating"
        assert event["event_id"] == f"ml-{event['user_id']}-{event['item_id']}"
        assert isinstance(event["ts"], int) and event["label"] in (0, 1)
        assert isinstance(event["user_id"], str) and isinstance(event["item_id"], str)
        assert 0 < len(event["text"]) <= 4096 and len(event["context"]) <= 512
        # The project's event contract accepts it as produced.
        assert isinstance(decode_event(json.dumps(event).encode()), Event), event["event_id"]
    order = [(e["ts"], int(e["user_id"]), int(e["item_id"])) for e in events]
    assert order == sorted(order)
    assert len({e["event_id"] for e in events}) == 2000

    # The stream starts at the log's earliest rating.
    with (DATA / "ratings.csv").open(encoding="utf-8", newline="") as handle:
        earliest = min(int(row["timestamp"]) for row in csv.DictReader(handle))
    assert events[0]["ts"] == earliest * 1000

    # Every title a context lists was rated by that user, earlier, with the matching label.
    # The first 2000 events hold the whole history of the first 2000 events.
    past: dict[str, list[tuple[int, str, int]]] = {}
    for event in events:
        earlier = past.get(event["user_id"], [])
        for part in filter(None, event["context"].split(" | ")):
            kind, _, titles = part.partition(": ")
            label = 1 if kind == "liked" else 0
            for title in titles.split("; "):
                assert any(ts < event["ts"] and t == title and lab == label for ts, t, lab in earlier), (
                    f"{event['event_id']}: {title!r} is not an earlier {kind} film"
                )
        title = event["text"].split(" | ")[0]
        past.setdefault(event["user_id"], []).append((event["ts"], title, event["label"]))
    assert sum(bool(e["context"]) for e in events) > 1000  # the check above was not vacuous
