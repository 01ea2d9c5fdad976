from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from streamtune.datasets import DatasetError, detect_layout, movielens_events
from streamtune.datasets.movielens import MAX_TEXT_CHARS
from streamtune.events import Event, decode_event

TOY = "Toy Story (1995)"
HEAT = "Heat (1995)"
SHAWSHANK = "Shawshank Redemption, The (1994)"
ALIEN = "Alien (1979)"


def test_latest_layout_replays_every_rating_as_an_event_in_order(latest_dir: Path) -> None:
    events = list(movielens_events(latest_dir))

    summary = [(e["ts"], e["user_id"], e["item_id"], e["label"]) for e in events]
    assert summary == [
        (1_000_000, "1", "1", 1),
        (1_500_000, "2", "1", 0),
        (1_500_000, "2", "3", 1),
        (2_000_000, "1", "2", 0),
        (3_000_000, "1", "3", 1),
        (3_000_000, "1", "4", 0),  # 3.5 is not a like
        (4_000_000, "2", "2", 1),
        (5_000_000, "1", "5", 1),
        (6_000_000, "3", "3", 1),
    ]
    assert all(isinstance(decode_event(json.dumps(e).encode()), Event) for e in events)
    assert events[0] == {
        "event_id": "ml-1-1",
        "event_type": "rating",
        "user_id": "1",
        "item_id": "1",
        "ts": 1_000_000,
        "text": f"{TOY} | Adventure, Animation | tags: pixar",
        "context": "",
        "label": 1,
    }


def test_text_holds_only_tags_applied_at_or_before_the_rating(latest_dir: Path) -> None:
    texts = {(e["user_id"], e["item_id"]): e["text"] for e in movielens_events(latest_dir)}

    # "prison" is applied at 3500: after user 1's rating (3000), before user 3's (6000).
    assert texts[("1", "3")] == f"{SHAWSHANK} | Drama"
    assert texts[("3", "3")] == f"{SHAWSHANK} | Drama | tags: prison"
    # "Heist" repeats "heist" (deduplicated); "pacino" (4500) is after user 2's rating (4000).
    assert texts[("1", "2")] == f"{HEAT} | Action, Crime, Thriller | tags: heist"
    assert texts[("2", "2")] == f"{HEAT} | Action, Crime, Thriller | tags: heist"
    assert texts[("1", "5")] == "Obscure (2000)"  # "(no genres listed)" says nothing


def test_context_lists_only_ratings_from_earlier_seconds(latest_dir: Path) -> None:
    contexts = {(e["user_id"], e["item_id"]): e["context"] for e in movielens_events(latest_dir)}

    assert contexts[("1", "1")] == ""
    assert contexts[("2", "1")] == ""
    # Rated in the same second as film 1: not yet history.
    assert contexts[("2", "3")] == ""
    assert contexts[("1", "2")] == f"liked: {TOY}"
    assert contexts[("1", "3")] == f"liked: {TOY} | disliked: {HEAT}"
    assert contexts[("1", "4")] == f"liked: {TOY} | disliked: {HEAT}"
    assert contexts[("2", "2")] == f"liked: {SHAWSHANK} | disliked: {TOY}"
    # Most recent first; nothing of user 1's from after 5000, nothing of other users.
    assert contexts[("1", "5")] == f"liked: {SHAWSHANK}; {TOY} | disliked: {ALIEN}; {HEAT}"


def test_since_drops_earlier_events_but_keeps_their_history(latest_dir: Path) -> None:
    moment = datetime.fromtimestamp(3000, tz=UTC)
    events = list(movielens_events(latest_dir, since=moment))

    assert [e["ts"] for e in events] == [3_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_000]
    assert events[0]["context"] == f"liked: {TOY} | disliked: {HEAT}"
    assert events[-1]["text"].endswith("tags: prison")
    # A date is its midnight UTC; a naive datetime is UTC.
    assert len(list(movielens_events(latest_dir, since=date(1970, 1, 1)))) == 9
    assert len(list(movielens_events(latest_dir, since=datetime(1970, 1, 1, 1, 23)))) == 2


def test_limit_keeps_the_first_events(latest_dir: Path) -> None:
    everything = list(movielens_events(latest_dir))

    assert list(movielens_events(latest_dir, limit=3)) == everything[:3]
    assert list(movielens_events(latest_dir, limit=0)) == []
    assert len(list(movielens_events(latest_dir, limit=100))) == len(everything)
    with pytest.raises(DatasetError, match="limit"):
        movielens_events(latest_dir, limit=-1)


def test_tags_file_is_optional(tmp_path: Path, write_latest: Callable[..., Path]) -> None:
    root = write_latest(tmp_path / "ml", tags=None)

    assert all("tags:" not in e["text"] for e in movielens_events(root))


def test_text_is_capped_and_tags_are_limited_in_number(tmp_path: Path, write_latest: Callable[..., Path]) -> None:
    tags = [(1, 1, f"{index:02d}" + "x" * 900, 1) for index in range(12)]
    root = write_latest(tmp_path / "ml", tags=tags)

    first = next(movielens_events(root))
    assert len(first["text"]) == MAX_TEXT_CHARS
    few = next(movielens_events(root, max_tags=2))
    assert few["text"].count("xxx, ") == 1  # two tags, one separator


def test_rated_film_missing_from_the_catalogue_is_named_by_id(
    tmp_path: Path, write_latest: Callable[..., Path]
) -> None:
    root = write_latest(tmp_path / "ml", ratings=[(1, 99, 4.0, 10)], tags=None)

    assert next(movielens_events(root))["text"] == "Movie 99"


def test_100k_layout_with_genre_file(tmp_path: Path, write_100k: Callable[..., Path]) -> None:
    root = write_100k(tmp_path / "ml-100k")
    events = list(movielens_events(root))

    assert detect_layout(root) == "ml-100k"
    assert [e["event_id"] for e in events] == ["ml-1-1", "ml-1-2", "ml-2-1", "ml-2-2"]
    assert [e["label"] for e in events] == [1, 0, 1, 0]
    assert events[0]["text"] == "Café Society (1995) | Dramatic"  # latin-1 decoded, u.genre name
    assert events[1]["text"] == "Mystery Film (1996)"  # "unknown" genre dropped
    assert events[0]["ts"] == 881_250_949_000
    assert events[2]["context"] == ""
    assert events[3]["context"] == "liked: Café Society (1995)"


def test_100k_layout_without_genre_file_uses_the_standard_genres(
    tmp_path: Path, write_100k: Callable[..., Path]
) -> None:
    root = write_100k(tmp_path / "ml-100k", with_genre_file=False)

    assert next(movielens_events(root))["text"] == "Café Society (1995) | Drama"


def test_unknown_directory_is_refused_with_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"ratings\.csv and movies\.csv.*u\.data and u\.item"):
        movielens_events(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not a directory"):
        movielens_events(tmp_path / "missing")


def test_malformed_rows_name_file_and_line(tmp_path: Path, write_latest: Callable[..., Path]) -> None:
    root = write_latest(tmp_path / "ml", ratings=[(1, 1, 4.0, 10), (1, 2, "four", 11)])
    with pytest.raises(DatasetError, match=r"ratings\.csv:3: 'four' is not a valid float"):
        movielens_events(root)

    (root / "movies.csv").write_text("movieId,name\n1,Toy Story\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"movies\.csv: header lacks column\(s\) title, genres"):
        movielens_events(root)


def test_100k_item_with_wrong_flag_count_is_refused(tmp_path: Path, write_100k: Callable[..., Path]) -> None:
    root = write_100k(tmp_path / "ml-100k")
    (root / "u.item").write_text("1|Film (1995)|||url|0|1\n", encoding="latin-1")

    with pytest.raises(DatasetError, match=r"u\.item:1: expected .* 19 genre flags"):
        movielens_events(root)
