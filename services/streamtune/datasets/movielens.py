"""MovieLens rating logs replayed as time-ordered user-behaviour events.

The files of either layout are read by :mod:`streamtune.datasets.movielens_files`. Each rating
becomes one event, replayed by (timestamp, user, item) so every run yields the same
order. An event's ``text`` holds only tags applied at or before its timestamp, and its
``context`` only ratings from strictly earlier timestamps: ratings sharing a second were
submitted together, and their relative order is an artefact of the sort, not of time.

References
----------
F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.
ACM Transactions on Interactive Intelligent Systems 5(4):19.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from streamtune.datasets.errors import DatasetError
from streamtune.datasets.history import TagBook, UserHistory

# The readers' names stay importable from here, where they lived first.
from streamtune.datasets.movielens_files import (
    LAYOUT_100K,
    LAYOUT_LATEST,
    ML100K_GENRES,
    Movie,
    MovieLensData,
    Rating,
    TagApplication,
    detect_layout,
    load_movielens,
)

__all__ = [
    "LAYOUT_100K",
    "LAYOUT_LATEST",
    "MAX_TEXT_CHARS",
    "ML100K_GENRES",
    "POSITIVE_RATING",
    "Movie",
    "MovieLensData",
    "Rating",
    "TagApplication",
    "detect_layout",
    "item_text",
    "load_movielens",
    "movielens_events",
    "replay_events",
    "to_epoch_ms",
]

logger = logging.getLogger(__name__)

# Ratings at or above this count as "liked" (label 1); MovieLens' scale is 0.5-5 (1-5 for 100k).
POSITIVE_RATING = 4.0
MAX_TEXT_CHARS = 4096


def movielens_events(
    path: str | Path,
    *,
    limit: int | None = None,
    since: date | datetime | None = None,
    history_per_kind: int = 5,
    max_tags: int = 10,
) -> Iterator[dict[str, Any]]:
    """Replay a MovieLens directory as events, oldest first.

    The files are read (and validated) when this function is called; events are then produced
    lazily, so they can be streamed to a file or a topic.

    Parameters
    ----------
    path
        A directory in the ml-latest or ml-100k layout.
    limit
        Stop after this many events (counted after ``since``); ``None`` for all.
    since
        Emit only events at or after this moment (a date means its midnight UTC; a naive
        datetime is taken as UTC). Earlier ratings and tags still build history and tags.
    history_per_kind
        How many recently liked and disliked titles the context lists.
    max_tags
        How many distinct tags a film's text lists at most.

    Returns
    -------
    Iterator[dict]
        Events with ``event_id``, ``event_type`` (``"rating"``), ``user_id``, ``item_id``,
        ``ts`` (epoch milliseconds), ``text``, ``context`` (``""`` for a user's first
        timestamp) and ``label`` (1 when the rating is >= 4.0, else 0).
    """
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")
    data = load_movielens(path)
    return replay_events(
        data,
        limit=limit,
        since_ms=None if since is None else to_epoch_ms(since),
        history=UserHistory(per_kind=history_per_kind),
        tag_book=TagBook(max_tags=max_tags),
    )


def replay_events(
    data: MovieLensData,
    *,
    limit: int | None,
    since_ms: int | None,
    history: UserHistory,
    tag_book: TagBook,
) -> Iterator[dict[str, Any]]:
    """Turn loaded ratings into events; see :func:`movielens_events` for the contract."""
    tags = data.tags
    next_tag = 0
    texts: dict[int, str] = {}  # film -> rendered text, dropped when its tags change
    missing: set[int] = set()
    emitted = 0
    if limit == 0:
        return
    for ts, same_second in itertools.groupby(data.ratings, key=lambda rating: rating.ts):
        group = list(same_second)
        # Tags up to and including this second are known to every rating of this second.
        first_new = next_tag
        while next_tag < len(tags) and tags[next_tag].ts <= ts:
            next_tag += 1
        changed = tag_book.add_all(
            (str(application.item_id), application.tag) for application in tags[first_new:next_tag]
        )
        for item in changed:
            texts.pop(int(item), None)

        ts_ms = ts * 1000
        if since_ms is None or ts_ms >= since_ms:
            for rating in group:
                user = str(rating.user_id)
                text = texts.get(rating.item_id)
                if text is None:
                    movie = _movie(data.movies, rating.item_id, missing)
                    text = texts[rating.item_id] = item_text(movie, tag_book.tags(str(rating.item_id)))
                yield {
                    "event_id": f"ml-{rating.user_id}-{rating.item_id}",
                    "event_type": "rating",
                    "user_id": user,
                    "item_id": str(rating.item_id),
                    "ts": ts_ms,
                    "text": text,
                    "context": history.context(user),
                    "label": int(rating.rating >= POSITIVE_RATING),
                }
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
        # Only now does this second become history, for later seconds.
        for rating in group:
            movie = _movie(data.movies, rating.item_id, missing)
            history.record(str(rating.user_id), movie.title, rating.rating >= POSITIVE_RATING)


def item_text(movie: Movie, tags: tuple[str, ...]) -> str:
    """``"Title (year) | Genre1, Genre2 | tags: t1, t2"``, parts omitted when empty."""
    text = movie.title
    if movie.genres:
        text += " | " + ", ".join(movie.genres)
    if tags:
        text += " | tags: " + ", ".join(tags)
    return text[:MAX_TEXT_CHARS]


def to_epoch_ms(moment: date | datetime) -> int:
    """Epoch milliseconds of a date (midnight UTC) or datetime (naive means UTC)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _movie(movies: dict[int, Movie], item_id: int, warned: set[int]) -> Movie:
    movie = movies.get(item_id)
    if movie is None:
        # A rated film absent from the catalogue: keep the event, name it by id.
        if item_id not in warned:
            warned.add(item_id)
            logger.warning("film %d is rated but not in the catalogue", item_id)
        movie = Movie(f"Movie {item_id}", ())
    return movie
