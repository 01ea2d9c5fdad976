"""MovieLens downloads read into memory: the two layouts' files, checked line by line.

Two layouts are read:

- ``ml-latest`` (``ml-latest-small``, ``ml-latest``, ``ml-25m`` …): ``ratings.csv``, ``movies.csv``
  and optionally ``tags.csv``, comma-separated with a header and quoted titles, UTF-8.
- ``ml-100k``: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item``
  (pipe-separated, latin-1, 19 genre flag columns) and optionally ``u.genre``; no tags.

:mod:`streamtune.datasets.movielens` turns what is read here into events.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from streamtune.datasets.errors import DatasetError

logger = logging.getLogger(__name__)

LAYOUT_LATEST = "ml-latest"
LAYOUT_100K = "ml-100k"
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
