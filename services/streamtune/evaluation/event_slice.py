"""Choose the events an evaluation runs on: a time-ordered slice of an events file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamtune.datasets.errors import DatasetError
from streamtune.datasets.jsonl import read_jsonl
from streamtune.evaluation.errors import EvaluationError
from streamtune.events import Event, decode_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventSlice:
    """Valid, distinct, time-ordered events, each as its JSON object and its decoded form."""

    raw: list[dict[str, Any]]
    events: list[Event]
    skipped_invalid: int
    skipped_duplicate: int

    def __len__(self) -> int:
        return len(self.events)


def parse_since(text: str) -> datetime:
    """``YYYY-MM-DD`` or an ISO datetime; without a zone it is UTC.

    >>> parse_since("2004-01-01").isoformat()
    '2004-01-01T00:00:00+00:00'
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EvaluationError(f"{text!r} is not a date (YYYY-MM-DD) or ISO datetime") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def load_slice(
    path: str | Path,
    *,
    limit: int | None = None,
    since: datetime | None = None,
    max_text_chars: int = 4096,
) -> EventSlice:
    """Read ``path`` and keep the first ``limit`` events at or after ``since``.

    Only what the trainer would train on is kept: events the trainer would dead-letter, and
    repeats of an event id, are dropped here (and counted), because the driver cuts the stream
    into chunks that must match the trainer's batches one for one.

    Raises
    ------
    EvaluationError
        If the file is unreadable, not in time order, or the slice is empty.
    """
    since_ms = int(since.timestamp() * 1000) if since is not None else None
    raw: list[dict[str, Any]] = []
    events: list[Event] = []
    invalid = duplicate = 0
    seen: set[str] = set()
    try:
        for document, decoded in _decoded(read_jsonl(path), max_text_chars):
            if decoded is None:
                invalid += 1
                continue
            if since_ms is not None and (decoded.ts_ms or 0) < since_ms:
                continue
            if decoded.event_id in seen:
                duplicate += 1
                continue
            if events and decoded.ts_ms is not None and (events[-1].ts_ms or 0) > decoded.ts_ms:
                raise EvaluationError(f"{path}: events are not in time order (event {decoded.event_id})")
            seen.add(decoded.event_id)
            raw.append(document)
            events.append(decoded)
            if limit is not None and len(events) >= limit:
                break
    except DatasetError as error:
        raise EvaluationError(str(error)) from error
    if not events:
        raise EvaluationError(f"{path}: no events in the requested slice (check --since and --limit)")
    if invalid or duplicate:
        logger.warning("skipped %d invalid events and %d repeated event ids", invalid, duplicate)
    return EventSlice(raw, events, invalid, duplicate)


def _decoded(documents: Iterable[dict[str, Any]], max_text_chars: int) -> Iterator[tuple[dict[str, Any], Event | None]]:
    for document in documents:
        decoded = decode_event(json.dumps(document).encode("utf-8"), max_text_chars)
        valid = isinstance(decoded, Event) and decoded.label in (0.0, 1.0)
        yield document, decoded if valid else None
