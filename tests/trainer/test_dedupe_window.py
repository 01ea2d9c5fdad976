"""The deduplication window written with every version is exactly the ids it holds, oldest
first, however many were added and dropped between two writes."""

from __future__ import annotations

import random

import numpy as np

from streamtune.trainer.dedupe import RecentIds, id_hash


def test_the_written_window_follows_every_add_and_drop():
    rng = random.Random(7)
    recent, expected = RecentIds(window=50), []
    for step in range(2_000):
        event_id = f"e{rng.randrange(400)}"  # repeats: some adds are duplicates
        if recent.add(event_id):
            expected = [*expected, id_hash(event_id)][-50:]
        if rng.random() < 0.1:  # a version: sometimes after one event, sometimes after a hundred
            written = recent.to_array()
            assert written.dtype == np.int64
            assert written.view(np.uint64).tolist() == expected, step
            assert RecentIds.from_array(written, 50).to_array().tolist() == written.tolist()
