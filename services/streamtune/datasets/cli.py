"""``streamtune datasets …``: convert public datasets into an events file."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from streamtune.datasets.errors import DatasetError
from streamtune.datasets.jsonl import write_jsonl
from streamtune.datasets.movielens import movielens_events
from streamtune.progress import Progress, tracked

logger = logging.getLogger(__name__)


def add_datasets_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``datasets movielens PATH -o OUT [--limit N] [--since DATE]``.

    Parameters
    ----------
    subparsers
        The object returned by ``ArgumentParser.add_subparsers()`` of the main CLI.

    Returns
    -------
    argparse.ArgumentParser
        The ``datasets`` parser; each leaf sets ``handler`` (``fn(args) -> int`` exit code).
    """
    datasets = subparsers.add_parser("datasets", help="convert a public dataset into an events file (JSON Lines)")
    kinds = datasets.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    movielens = kinds.add_parser(
        "movielens",
        help="MovieLens ratings as time-ordered rating events",
        description=(
            "Convert a MovieLens directory (ml-latest-small CSV layout or ml-100k u.data/u.item "
            "layout) into time-ordered events: label = rating >= 4, text = title, genres and the "
            "tags known so far, context = the user's earlier likes and dislikes."
        ),
    )
    movielens.add_argument("path", metavar="PATH", help="the unpacked MovieLens directory")
    movielens.add_argument("-o", "--output", required=True, metavar="OUT", help="events file to write (.jsonl)")
    movielens.add_argument("--limit", type=_non_negative_int, metavar="N", help="stop after N events")
    movielens.add_argument(
        "--since",
        type=_moment,
        metavar="DATE",
        help="keep events at/after DATE (YYYY-MM-DD or ISO datetime, UTC); earlier ratings "
        "still build each user's history",
    )
    movielens.set_defaults(handler=run_movielens)
    return datasets


def run_movielens(args: argparse.Namespace) -> int:
    """Convert, write and print a summary; returns the process exit code."""
    started = time.perf_counter()
    try:
        events = movielens_events(args.path, limit=args.limit, since=args.since)
        summary = EventSummary()
        with Progress("datasets movielens", args.limit, "events") as progress:
            written = write_jsonl(tracked(summary.observe(events), progress), args.output)
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {written} events to {args.output} in {time.perf_counter() - started:.1f} s")
    for line in summary.lines():
        print(f"  {line}")
    return 0


class EventSummary:
    """Counts, label balance and time span of events passing through :meth:`observe`."""

    def __init__(self) -> None:
        self.events = 0
        self.positives = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self._users: set[str] = set()
        self._items: set[str] = set()

    def observe(self, events: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """Pass events through unchanged while counting them."""
        for event in events:
            self.events += 1
            self.positives += int(event["label"])
            ts = int(event["ts"])
            self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
            self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
            self._users.add(event["user_id"])
            self._items.add(event["item_id"])
            yield event

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        if not self.events:
            return ["no events (check --since and --limit)"]
        share = self.positives / self.events
        negatives = self.events - self.positives
        return [
            f"labels: {self.positives} positive ({share:.1%}), {negatives} negative",
            f"users: {len(self._users)}, items: {len(self._items)}",
            f"time span: {_iso(self.first_ts)} .. {_iso(self.last_ts)} (UTC)",
        ]


def _iso(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _moment(text: str) -> date | datetime:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or ISO datetime (YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None
