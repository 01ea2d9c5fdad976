"""What a served version covers: the events of its topic's partitions, added up."""

from __future__ import annotations

from streamtune.evaluation.served_store import ServedStore


def test_a_version_covers_the_events_of_every_partition_of_its_topic():
    served = ServedStore("online_hybrid", store=None, server=None, client=None, events_topic="eval-events")
    offsets = {"eval-events:0": 520, "eval-events:3": 8, "eval-events:1": 16, "eval-events.dlq:0": 4, "other:0": 9}
    assert served.remember(offsets, version=7) == 544
    assert served.covered(7) == 544
    assert served.covered(0) == 0  # the base model was trained on nothing
