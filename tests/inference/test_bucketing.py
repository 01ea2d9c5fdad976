"""Length bucketing: a partition of the rows that never costs more than padding them together."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamtune.inference.bucketing import FORWARD_OVERHEAD_TOKENS, padded_length, plan_buckets


def cost(lengths: list[int], groups: list[list[int]], multiple: int = 16) -> int:
    """The estimate the planner minimises: a fixed cost per forward plus the padded tokens."""
    return sum(
        FORWARD_OVERHEAD_TOKENS + len(group) * max(padded_length(lengths[i], multiple) for i in group)
        for group in groups
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 128), min_size=1, max_size=80), st.integers(1, 64))
def test_every_row_once_within_the_row_limit_and_never_worse_than_one_padded_batch(lengths, max_rows):
    groups = plan_buckets(lengths, max_rows)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert all(1 <= len(group) <= max_rows for group in groups)
    # Groups come in length order, so each group's rows are no longer than the next group's.
    flat = [lengths[i] for group in groups for i in group]
    assert flat == sorted(flat)
    # The naive plan: all rows padded to the longest, cut only where max_rows forces it.
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    naive = [order[start : start + max_rows] for start in range(0, len(order), max_rows)]
    single = [[i for group in naive for i in group]]
    assert cost(lengths, groups) <= cost(lengths, single if len(lengths) <= max_rows else naive)


def test_short_rows_are_not_padded_to_a_long_one():
    lengths = [12, 14, 120, 13, 15, 11]
    groups = plan_buckets(lengths, max_rows=64)
    assert groups == [[5, 0, 3, 1, 4], [2]]


def test_rows_of_similar_length_share_one_forward():
    assert len(plan_buckets([17, 20, 25, 31], max_rows=64)) == 1


def test_empty_batch_and_unpadded_lengths():
    assert plan_buckets([], max_rows=8) == []
    assert plan_buckets([5, 6, 100], max_rows=8, pad_multiple=1) == [[0, 1], [2]]
