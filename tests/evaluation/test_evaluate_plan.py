"""The pure parts of `streamtune evaluate`: plan, slice, freshness, contender selection, tables."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest

from streamtune.evaluation import Breakdown, EvaluationError, score_contender
from streamtune.evaluation.contenders import CONTENDERS, ScoreLog, lineages_needed, parse_contenders
from streamtune.evaluation.detail_tables import detail_markdown
from streamtune.evaluation.event_slice import load_slice, parse_since
from streamtune.evaluation.freshness import freshness
from streamtune.evaluation.plan import ChunkSizes, plan_run
from streamtune.events import decode_event


def test_plan_rounds_to_chunks_and_covers_every_scored_event():
    plan = plan_run(1000, ChunkSizes(batch_size=16, chunk_size=64), warmup_share=0.2, periodic_every=100)
    assert plan.warmup == 192  # 200 rounded down to whole chunks
    assert plan.periodic_every == 128  # rounded up to whole chunks
    chunks = plan.chunks()
    assert chunks[0][0] == plan.warmup and chunks[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    assert all(stop - start == 64 for start, stop in chunks[:-1])
    assert plan.retrain_points() == [320, 448, 576, 704, 832, 960]
    assert all((point - plan.warmup) % plan.chunk == 0 for point in plan.retrain_points())


def test_plan_warmup_is_at_least_one_chunk():
    assert plan_run(300, ChunkSizes(batch_size=8, chunk_size=64), warmup_share=0.01).warmup == 64


def test_fast_chunks_tile_the_slow_ones():
    plan = plan_run(1000, ChunkSizes(batch_size=16, chunk_size=64, fast_chunk_size=16, fast_batch_size=8))
    fast = plan.fast_chunks()
    assert fast[0][0] == plan.warmup == 64 and fast[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(fast))
    slow_stops = {stop for _, stop in plan.chunks()}
    assert slow_stops == {stop for _, stop in fast if plan.is_slow_boundary(stop)}
    assert len(fast) == 4 * len(plan.chunks()) - 1  # the last slow chunk holds 40 events: 16 + 16 + 8


@pytest.mark.parametrize(
    ("n", "batch", "chunk", "fast", "message"),
    [
        (1000, 32, 100, None, "multiple of its batch size"),
        (1000, 32, 16, None, "multiple of its batch size"),
        (64, 16, 64, None, "nothing to score"),
        (1000, 16, 64, 12, "multiple of its batch size"),  # the fast batch is 8
        (1000, 16, 64, 24, "must divide the chunk size"),
    ],
)
def test_plan_refuses_boundaries_the_protocol_cannot_keep(n, batch, chunk, fast, message):
    with pytest.raises(EvaluationError, match=message):
        plan_run(n, ChunkSizes(batch_size=batch, chunk_size=chunk, fast_chunk_size=fast, fast_batch_size=8))


def test_freshness_in_events_and_hours():
    hour = 3_600_000
    lag = freshness(
        positions=[100, 101, 102, 103],
        covered=[100, 100, 100, 102],
        versions=[3, 3, 3, 4],
        event_ts=[10 * hour, 11 * hour, 12 * hour, 13 * hour],
        watermarks=[9 * hour, 9 * hour, -1, 12 * hour],
    )
    assert lag.lag_events_mean == pytest.approx(1.0)  # lags 0, 1, 2, 1
    assert lag.lag_events_max == 2
    assert lag.versions_served == 2
    assert lag.lag_hours_median == pytest.approx(1.0)  # of 1, 2 and 1 hours; the unknown is left out


def test_freshness_refuses_a_version_that_saw_the_event_it_scored():
    with pytest.raises(EvaluationError, match="not prequential"):
        freshness([5, 6], [5, 7], [1, 2])


def test_contender_selection():
    assert parse_contenders("all") == list(CONTENDERS)
    assert parse_contenders("periodic, river_logreg") == ["periodic", "river_logreg"]
    with pytest.raises(EvaluationError, match="unknown"):
        parse_contenders("online_lora,bandit")
    assert parse_contenders("fast") == ["online_hybrid", "popularity", "river_fm"]
    assert parse_contenders("fast,online_ids") == ["online_hybrid", "online_ids", "popularity", "river_fm"]
    assert lineages_needed(["frozen"]) == ["online_lora"]
    assert lineages_needed(["online_full", "river_fm"]) == ["online_full"]
    assert lineages_needed(["online_ids", "popularity"]) == ["online_ids"]
    assert lineages_needed(["river_fm", "popularity"]) == []


def _write(path, events):
    path.write_text("".join(json.dumps(event) + "\n" for event in events), "utf-8")
    return path


def _event(index: int, ts: int, **extra) -> dict:
    return {"event_id": f"e{index}", "text": f"film {index}", "label": index % 2, "ts": ts} | extra


def test_slice_keeps_what_the_trainer_trains(tmp_path):
    events = [
        _event(0, 1000),
        _event(1, 2000, text=""),  # the trainer would dead-letter it
        _event(2, 3000),
        _event(2, 3500),  # the same event id again
        _event(3, 4000),
        _event(4, 5000, label=0.5),  # not a binary label: AUC needs 0/1
        _event(5, 6000),
        _event(6, 7000),
    ]
    chosen = load_slice(_write(tmp_path / "e.jsonl", events), since=datetime.fromtimestamp(3, tz=UTC), limit=3)
    assert [e.event_id for e in chosen.events] == ["e2", "e3", "e5"]
    assert [raw["event_id"] for raw in chosen.raw] == ["e2", "e3", "e5"]
    assert (chosen.skipped_invalid, chosen.skipped_duplicate) == (2, 1)
    assert all(
        decode_event(json.dumps(raw).encode()) == event for raw, event in zip(chosen.raw, chosen.events, strict=True)
    )


def test_slice_errors(tmp_path):
    unordered = _write(tmp_path / "u.jsonl", [_event(0, 2000), _event(1, 1000)])
    with pytest.raises(EvaluationError, match="time order"):
        load_slice(unordered)
    with pytest.raises(EvaluationError, match="no events"):
        load_slice(unordered, since=parse_since("2030-01-01"))
    with pytest.raises(EvaluationError, match="no such events file"):
        load_slice(tmp_path / "missing.jsonl")
    with pytest.raises(EvaluationError, match="not a date"):
        parse_since("last tuesday")


def test_score_log_result_and_detail_tables():
    events = [decode_event(json.dumps(_event(i, 1000 * i)).encode()) for i in range(10, 16)]
    log = ScoreLog("online_lora")
    log.add([0.2, 0.8, 0.3], version=2, covered=10, watermark_ms=9000)
    log.add([0.7, 0.4, 0.9], version=3, covered=13, watermark_ms=12000)
    result = log.result(events, first_position=10, window=4)
    assert result.auc == 1.0
    assert result.params["freshness"]["lag_events_max"] == 2
    assert result.params["freshness"]["versions_served"] == 2
    other = score_contender("frozen", [0, 1, 0, 1, 0, 1], [0.5] * 6, Breakdown(window=4))
    text = detail_markdown([result, other])
    assert "| 0-3 | 4 | 1.0000 | 0.5000 |" in text
    assert "| online_lora | 2 | 1.0 | 2 |" in text
    assert "Windows won" not in text  # no baseline among the contenders
    floor = score_contender("popularity", [0, 1, 0, 1, 0, 1], [0.4, 0.6, 0.6, 0.4, 0.4, 0.6], Breakdown(window=4))
    wins = detail_markdown([result, floor])
    # online_lora: AUC 1.0 against 0.5 in the first window, 1.0 against 1.0 in the second.
    assert "| online_lora | 1/2 | 2/2 |" in wins
    assert "| popularity | 0/2 | 0/2 |" in wins
    with pytest.raises(EvaluationError, match="scored 6 events, expected 5"):
        log.result(events[:5], first_position=10, window=4)
