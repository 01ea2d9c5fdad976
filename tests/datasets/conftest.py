"""Tiny MovieLens directories written into tmp_path, in both layouts."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# (movieId, title, genres) — a quoted title with a comma, a film without genres.
MOVIES = [
    (1, "Toy Story (1995)", "Adventure|Animation"),
    (2, "Heat (1995)", "Action|Crime|Thriller"),
    (3, "Shawshank Redemption, The (1994)", "Drama"),
    (4, "Alien (1979)", "Horror|Sci-Fi"),
    (5, "Obscure (2000)", "(no genres listed)"),
]
# (userId, movieId, rating, timestamp) — deliberately unsorted, with ties on the second.
RATINGS = [
    (1, 5, 4.5, 5000),
    (1, 1, 4.0, 1000),
    (2, 3, 4.0, 1500),
    (1, 2, 2.0, 2000),
    (2, 1, 3.0, 1500),
    (1, 4, 3.5, 3000),
    (1, 3, 5.0, 3000),
    (2, 2, 5.0, 4000),
    (3, 3, 4.0, 6000),
]
# (userId, movieId, tag, timestamp)
TAGS = [
    (9, 1, "pixar", 1000),  # same second as user 1's rating of film 1: known to it
    (2, 2, "heist", 1999),  # before user 1 rates film 2 at 2000
    (7, 2, "Heist", 2500),  # a case variant: deduplicated
    (8, 3, "prison", 3500),  # AFTER user 1 rates film 3 at 3000: must not leak into that event
    (8, 2, "pacino", 4500),  # after user 2 rates film 2 at 4000
]


def _write_latest(
    root: Path,
    ratings: Sequence[tuple] = RATINGS,
    movies: Sequence[tuple] = MOVIES,
    tags: Sequence[tuple] | None = TAGS,
) -> Path:
    """Write ratings.csv, movies.csv and (unless ``tags`` is None) tags.csv."""
    root.mkdir(parents=True, exist_ok=True)
    files = [
        ("ratings.csv", ("userId", "movieId", "rating", "timestamp"), ratings),
        ("movies.csv", ("movieId", "title", "genres"), movies),
    ]
    if tags is not None:
        files.append(("tags.csv", ("userId", "movieId", "tag", "timestamp"), tags))
    for name, header, rows in files:
        with (root / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    return root


def _write_100k(root: Path, *, with_genre_file: bool = True) -> Path:
    """An ml-100k directory: u.data (tabs), u.item (pipes, latin-1), optionally u.genre."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text(
        "2\t1\t5\t881250950\n1\t2\t3\t881250949\n1\t1\t4\t881250949\n2\t2\t2\t881250960\n",
        encoding="latin-1",
    )

    def flags(*on: int) -> str:
        return "|".join("1" if index in on else "0" for index in range(19))

    (root / "u.item").write_bytes(
        (
            f"1|Café Society (1995)|01-Jan-1995||http://x|{flags(8)}\n"
            f"2|Mystery Film (1996)|01-Jan-1996||http://y|{flags(0)}\n"
        ).encode("latin-1")
    )
    if with_genre_file:
        names = ["unknown", "Act", "Adv", "Ani", "Chi", "Com", "Cri", "Doc", "Dramatic"]
        names += [f"G{index}" for index in range(9, 19)]
        (root / "u.genre").write_text(
            "".join(f"{name}|{index}\n" for index, name in enumerate(names)) + "\n",
            encoding="latin-1",
        )
    return root


@pytest.fixture
def write_latest() -> Callable[..., Path]:
    """``write_latest(root, ratings=…, movies=…, tags=…)`` writes an ml-latest directory."""
    return _write_latest


@pytest.fixture
def write_100k() -> Callable[..., Path]:
    """``write_100k(root, with_genre_file=True)`` writes an ml-100k directory."""
    return _write_100k


@pytest.fixture
def latest_dir(tmp_path: Path) -> Path:
    """The default ml-latest scenario (see RATINGS and TAGS above)."""
    return _write_latest(tmp_path / "ml-latest-small")
