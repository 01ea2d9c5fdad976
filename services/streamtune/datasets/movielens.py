"""MovieLens rating logs replayed as time-ordered user-behaviour events.

Two layouts are read:

- ``ml-latest`` (``ml-latest-small``, ``ml-latest``, ``ml-25m`` …): ``ratings.csv``, ``movies.csv``
  and optionally ``tags.csv``, comma-separated with a header and quoted titles, UTF-8.
- ``ml-100k``: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item``
  (pipe-separated, latin-1, 19 genre flag columns) and optionally ``u.genre``; no tags.

Each rating becomes one event, replayed by (timestamp, user, item) so every run yields the same
order. An event's ``text`` holds only tags applied at or before its timestamp, and its
``context`` only ratings from strictly earlier timestamps: ratings sharing a second were
submitted together, and their relative order is an artefact of the sort, not of time.

References
----------
F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.
ACM Transactions on Interactive Intelligent Systems 5(4):19.
"""

from __future__ import annotations

import csv
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from streamtune.datasets.errors import DatasetError
from streamtune.datasets.history import TagBook, UserHistory

logger = logging.getLogger(__name__)

LAYOUT_LATEST = "ml-latest"
LAYOUT_100K = "ml-100k"
# Ratings at or above this count as "liked" (label 1); MovieLens' scale is 0.5-5 (1-5 for 100k).
POSITIVE_RATING = 4.0
MAX_TEXT_CHARS = 4096
# u.item's 19 flag columns, in order, for downloads that lack u.genre.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
# Placeholders the datasets use for "no genre"; they carry no information for a model.
_NO_GENRE = {"(no genres listed)", "unknown"}


class Rating(NamedTuple):
    """One rating; tuples sort in replay order (timestamp, user, item)."""

    ts: int  # Unix seconds
    user_id: int
    item_id: int
    rating: float


class Movie(NamedTuple):
    """A film's title (with year, as the datasets write it) and genres."""

    title: str
    genres: tuple[str, ...]


class TagApplication(NamedTuple):
    """A free-text tag some user applied to a film at ``ts`` (Unix seconds)."""

    ts: int
    item_id: int
    tag: str


@dataclass(frozen=True)
class MovieLensData:
    """A MovieLens directory in memory: ratings in replay order, films, tags by time."""

    layout: str
    ratings: list[Rating]
    movies: dict[int, Movie]
    tags: list[TagApplication]


def detect_layout(path: str | Path) -> str:
    """Return :data:`LAYOUT_LATEST` or :data:`LAYOUT_100K` for a MovieLens directory.

    Raises
    ------
    DatasetError
        If ``path`` is not a directory or holds neither layout's files.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory; point at an unpacked MovieLens download")
    if (root / "ratings.csv").is_file() and (root / "movies.csv").is_file():
        return LAYOUT_LATEST
    if (root / "u.data").is_file() and (root / "u.item").is_file():
        return LAYOUT_100K
    raise DatasetError(
        f"{root}: not a MovieLens directory; expected ratings.csv and movies.csv "
        "(ml-latest-small layout) or u.data and u.item (ml-100k layout)"
    )


def load_movielens(path: str | Path) -> MovieLensData:
    """Read a MovieLens directory of either layout; ratings come back in replay order.

    Raises
    ------
    DatasetError
        If the layout is unknown or a file is malformed (the message names file and line).
    """
    root = Path(path)
    layout = detect_layout(root)
    started = time.perf_counter()
    if layout == LAYOUT_LATEST:
        movies = _read_latest_movies(root / "movies.csv")
        ratings = _read_latest_ratings(root / "ratings.csv")
        tags_file = root / "tags.csv"
        tags = _read_latest_tags(tags_file) if tags_file.is_file() else []
    else:
        movies = _read_100k_movies(root / "u.item", _read_100k_genres(root / "u.genre"))
        ratings = _read_100k_ratings(root / "u.data")
        tags = []
    ratings.sort()
    tags.sort(key=lambda application: application.ts)  # stable: file order within a second
    logger.info(
        "read %s layout from %s: %d ratings, %d films, %d tags in %.2f s",
        layout, root, len(ratings), len(movies), len(tags), time.perf_counter() - started,
    )  # fmt: skip
    return MovieLensData(layout=layout, ratings=ratings, movies=movies, tags=tags)


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


# --- readers ----------------------------------------------------------------------------------


def _read_csv(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, values of columns)`` from a headed UTF-8 CSV file."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: empty file; expected a header {','.join(columns)}")
        header = [name.strip().lstrip("\ufeff") for name in header]
        missing = [name for name in columns if name not in header]
        if missing:
            raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)}")
        positions = [header.index(name) for name in columns]
        width = max(positions) + 1
        for row in reader:
            if not row:
                continue
            if len(row) < width:
                raise DatasetError(f"{path}:{reader.line_num}: expected {len(header)} fields")
            yield reader.line_num, [row[position] for position in positions]


def _number(text: str, kind: type[int | float], path: Path, line: int) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise DatasetError(f"{path}:{line}: {text!r} is not a valid {kind.__name__}") from None


def _read_latest_movies(path: Path) -> dict[int, Movie]:
    movies = {}
    for line, (movie_id, title, genres) in _read_csv(path, ("movieId", "title", "genres")):
        names = tuple(g for g in genres.split("|") if g and g not in _NO_GENRE)
        movies[_number(movie_id, int, path, line)] = Movie(title.strip(), names)
    return movies


def _read_latest_ratings(path: Path) -> list[Rating]:
    columns = ("userId", "movieId", "rating", "timestamp")
    return [
        Rating(
            ts=_number(ts, int, path, line),
            user_id=_number(user, int, path, line),
            item_id=_number(item, int, path, line),
            rating=_number(rating, float, path, line),
        )
        for line, (user, item, rating, ts) in _read_csv(path, columns)
    ]


def _read_latest_tags(path: Path) -> list[TagApplication]:
    return [
        TagApplication(_number(ts, int, path, line), _number(item, int, path, line), tag)
        for line, (item, tag, ts) in _read_csv(path, ("movieId", "tag", "timestamp"))
    ]


def _read_100k_genres(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ML100K_GENRES
    by_index = {}
    with path.open(encoding="latin-1") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            name, _, index = raw.strip().rpartition("|")
            by_index[_number(index, int, path, line)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise DatasetError(f"{path}: genre indices must run 0..{len(by_index) - 1}")
    return tuple(by_index[index] for index in range(len(by_index)))


def _read_100k_movies(path: Path, genre_names: tuple[str, ...]) -> dict[int, Movie]:
    movies = {}
    # latin-1: the GroupLens file predates UTF-8 and holds accented titles.
    with path.open(encoding="latin-1") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            fields = raw.rstrip("\r\n").split("|")
            flags = fields[5:]
            if len(fields) < 5 or len(flags) != len(genre_names):
                raise DatasetError(
                    f"{path}:{line}: expected id|title|release|video release|url and "
                    f"{len(genre_names)} genre flags, got {len(fields)} fields"
                )
            genres = tuple(
                name
                for name, flag in zip(genre_names, flags, strict=True)
                if flag.strip() == "1" and name not in _NO_GENRE
            )
            movies[_number(fields[0], int, path, line)] = Movie(fields[1].strip(), genres)
    return movies


def _read_100k_ratings(path: Path) -> list[Rating]:
    ratings = []
    with path.open(encoding="latin-1") as handle:
        for line, raw in enumerate(handle, start=1):
            fields = raw.split()
            if not fields:
                continue
            if len(fields) != 4:
                raise DatasetError(f"{path}:{line}: expected user, item, rating, timestamp")
            user, item, rating, ts = fields
            ratings.append(
                Rating(
                    ts=_number(ts, int, path, line),
                    user_id=_number(user, int, path, line),
                    item_id=_number(item, int, path, line),
                    rating=_number(rating, float, path, line),
                )
            )
    return ratings
