"""The ID -> row mapping alone: admission, expiry, budget eviction, removal, state."""

from __future__ import annotations

import pytest

from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.id_mapping import UNKNOWN, IdMapping


def test_a_key_gets_a_row_only_after_enough_sightings():
    mapping = IdMapping(capacity=4, admit_after=3)
    assert [mapping.observe("a", now).row for now in range(3)] == [UNKNOWN, UNKNOWN, 0]
    assert mapping.observe("a", 3).fresh is False
    assert mapping.row("a") == 0 and mapping.row("b") == UNKNOWN


def test_keys_unseen_for_the_span_expire_and_their_rows_are_reused():
    mapping = IdMapping(capacity=4, expire_after=10)
    mapping.observe("old", now=0)
    mapping.observe("young", now=8)
    assert mapping.expire(now=10) == []
    assert mapping.expire(now=11) == [("old", 0)]
    assert "old" not in mapping and "young" in mapping
    assert mapping.observe("new", now=12).row == 0


def test_a_full_budget_evicts_the_least_recently_seen_key():
    mapping = IdMapping(capacity=2)
    mapping.observe("a", 0)
    mapping.observe("b", 1)
    mapping.observe("a", 2)  # "b" is now the least recently seen
    sighting = mapping.observe("c", 3)
    assert sighting == type(sighting)(row=1, fresh=True, evicted="b")
    assert len(mapping) == 2 and "b" not in mapping


def test_remove_forgets_the_row_and_the_admission_count():
    mapping = IdMapping(capacity=2, admit_after=2)
    mapping.observe("pending", 0)
    mapping.observe("x", 0)
    row = mapping.observe("x", 1).row
    assert mapping.remove("x") == row and mapping.remove("pending") is None
    assert mapping.observe("pending", 2).row == UNKNOWN  # its earlier sighting is gone too


def test_assign_moves_keys_as_a_delta_says():
    mapping = IdMapping(capacity=3)
    mapping.assign("a", 2)
    mapping.assign("b", 2)  # row 2 now holds b: a is gone
    mapping.assign(None, 0)
    assert mapping.items() == [("b", 2)]
    assert mapping.observe("c", 1).row == 0
    with pytest.raises(HybridModelError):
        mapping.assign("d", 3)


def test_state_round_trip_keeps_order_counts_and_free_rows():
    mapping = IdMapping(capacity=3, admit_after=2, expire_after=5)
    for now, key in enumerate(["a", "a", "b", "b", "c"]):
        mapping.observe(key, now)
    restored = IdMapping.from_state_dict(mapping.state_dict())
    assert restored.state_dict() == mapping.state_dict()
    assert restored.observe("c", 5).row == mapping.observe("c", 5).row == 2


def test_a_copy_keeps_the_least_recently_seen_order_and_evicts_on_its_own():
    mapping = IdMapping(capacity=3)
    for now, key in enumerate(["a", "b", "c", "a", "b"]):  # least recently seen now: c, a, b
        mapping.observe(key, now)
    copied = mapping.copy()
    assert copied.items() == mapping.items() == [("c", 2), ("a", 0), ("b", 1)]
    assert copied.observe("d", 5).evicted == "c"
    mapping.observe("c", 5)  # the original moves on separately: c is the most recent there
    assert mapping.observe("e", 6).evicted == "a"
    assert [key for key, _ in copied.items()] == ["a", "b", "d"]


def test_clocks_stay_in_the_keys_order_through_every_change():
    mapping = IdMapping(capacity=4, expire_after=50)
    for now, key in enumerate(["a", "b", "c", "a", "d", "e", "b"]):  # e evicts c
        mapping.observe(key, now)
    mapping.assign("f", 3, now=10)
    mapping.remove("a")
    mapping.observe("d", 11)
    state = mapping.state_dict()
    assert list(state["last_seen"]) == [key for key, _ in state["rows"]]
    assert list(IdMapping.from_state_dict(state).state_dict()["last_seen"]) == list(state["last_seen"])


def test_rows_are_handed_out_as_a_full_free_list_would_hand_them_out():
    """Freed rows first (last freed first), then the lowest row never used; rows a delta took
    are skipped; a restored mapping hands out its holes lowest first."""
    mapping = IdMapping(capacity=8)
    assert [mapping.observe(key, 0).row for key in "abc"] == [0, 1, 2]
    mapping.assign("x", 4)  # a delta took row 4
    mapping.remove("a")
    mapping.remove("b")
    assert [mapping.observe(key, 1).row for key in "def"] == [1, 0, 3]  # b's row, a's, then 3
    assert mapping.observe("g", 2).row == 5  # 4 is held
    mapping.remove("x")
    mapping.remove("c")
    restored = IdMapping.from_state_dict(mapping.state_dict())
    assert [restored.observe(key, 3).row for key in "hijk"] == [2, 4, 6, 7]
    assert [mapping.observe(key, 3).row for key in "hi"] == [2, 4]  # c's row, then x's
    with_every_row = IdMapping(capacity=2)
    assert [with_every_row.observe(key, now).row for now, key in enumerate("abc")] == [0, 1, 0]  # c evicts a


def test_rebuilding_the_dicts_before_a_copy_changes_nothing_a_reader_sees():
    """Keys moved to the end (or dropped) leave dead entries in the mapping's dicts; before a copy
    it rebuilds them once those outnumber half its keys, so the copy with every version clones
    tables instead of going key by key. Order, rows and clocks stay those of a mapping that is
    never copied, and the copies are what the mapping was at the time."""
    import random

    chooser = random.Random(7)
    copied, never_copied = IdMapping(capacity=40), IdMapping(capacity=40)
    rebuilds = 0
    for now in range(3000):
        key = f"k{chooser.randrange(60)}"  # more keys than rows: evictions too
        assert copied.observe(key, now) == never_copied.observe(key, now)
        if now % 7 == 0:
            dead_before = copied._dead
            snapshot = copied.copy()
            rebuilds += copied._dead < dead_before
            assert snapshot.state_dict() == never_copied.state_dict()
        assert copied._dead <= len(copied) // 2 + 7  # never far past the rebuild point
    assert rebuilds > 10
    assert copied.state_dict() == never_copied.state_dict() and copied.items() == never_copied.items()
