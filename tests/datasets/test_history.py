from __future__ import annotations

import doctest

import pytest

from streamtune.datasets import history
from streamtune.datasets.history import TagBook, UserHistory


def test_doctests() -> None:
    assert doctest.testmod(history).failed == 0


def test_user_history_keeps_the_most_recent_titles_per_kind_and_users_apart() -> None:
    h = UserHistory(per_kind=2)
    for title in ["A", "B", "C"]:
        h.record("1", title, liked=True)
    h.record("2", "X", liked=False)

    assert h.context("1") == "liked: C; B"
    assert h.context("2") == "disliked: X"
    assert h.context("3") == ""


def test_user_history_context_is_bounded() -> None:
    h = UserHistory(per_kind=5, max_chars=20)
    for index in range(5):
        h.record("1", f"A long film title {index}", liked=True)

    assert len(h.context("1")) == 20


def test_tag_book_normalises_whitespace_and_reports_changes() -> None:
    book = TagBook(max_tags=3)

    assert book.add_all([("1", "  dark   humour "), ("1", "DARK HUMOUR"), ("2", "")]) == {"1"}
    assert book.tags("1") == ("dark humour",)
    assert book.tags("2") == ()


@pytest.mark.parametrize("kwargs", [{"per_kind": 0}, {"max_chars": 0}])
def test_user_history_refuses_empty_bounds(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        UserHistory(**kwargs)
