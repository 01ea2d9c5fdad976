"""A batch is routed as its events would be one by one: duplicates (of the window and of each
other) skipped, a stable hash share held out, the rest trained, in the batch's order."""

from __future__ import annotations

import random

import torch

from streamtune.ingest.training_batch import TrainingBatch
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.routing import route


def batch_of(event_ids: list[str]) -> TrainingBatch:
    return TrainingBatch(generation=0, inputs={}, labels=torch.zeros(len(event_ids)), event_ids=event_ids, offsets={})


def test_duplicates_in_the_window_and_in_the_batch_are_skipped():
    recent = RecentIds(window=10)
    first = route(batch_of(["a", "b", "a", "c", "b"]), recent, holdout_share=0.0)
    assert first.fresh.tolist() == first.to_train.tolist() == [0, 1, 3]
    second = route(batch_of(["c", "d", "d"]), recent, holdout_share=0.0)
    assert second.fresh.tolist() == [1] and second.duplicates(batch_of(["c", "d", "d"])) == 2
    assert route(batch_of(["a", "a"]), RecentIds(window=0), holdout_share=0.0).fresh.tolist() == [0, 1]


def test_a_batch_routes_as_its_events_would_one_by_one():
    rng = random.Random(3)
    batched, single = RecentIds(window=40), RecentIds(window=40)
    held_out_rows = 0
    for _ in range(200):
        event_ids = [f"e{rng.randrange(150)}" for _ in range(rng.randrange(0, 30))]
        routes = route(batch_of(event_ids), batched, holdout_share=0.3)
        fresh = [row for row, event_id in enumerate(event_ids) if single.add(event_id)]
        held_out = [row for row in fresh if is_holdout(event_ids[row], 0.3)]
        assert routes.fresh.tolist() == fresh
        assert routes.held_out.tolist() == held_out
        assert routes.to_train.tolist() == [row for row in fresh if row not in held_out]
        held_out_rows += len(held_out)
    assert held_out_rows  # the share was exercised
    assert batched.to_array().tolist() == single.to_array().tolist()
