"""The hybrid contenders of `streamtune evaluate`: online_hybrid and online_ids through real trainer
and server processes (the tiny model as text encoder), popularity in-process, and online_lora
beside them: the two speeds of lock-step chunk in one run.

The events' labels depend on the user alone (half the users like everything they see, half
nothing, with 10 % noise) and their texts carry no signal, so only a contender whose requests
reach the model with their user id can score well. Cost on two cores: ~60 s (six children).
"""

from __future__ import annotations

import json
import math
import random

import pytest

from streamtune.cli import main
from streamtune.evaluation.event_slice import EventSlice
from streamtune.evaluation.in_process import ScoredSpan, in_process_results
from streamtune.evaluation.plan import ChunkSizes, plan_run
from streamtune.evaluation.scoring import cold_events
from streamtune.events import decode_event

EVENTS = 384
CHUNK = 64
FAST_CHUNK = 16
FAST_BATCH = 8
USERS = 12
ITEMS = 60


def user_driven_events(count: int, seed: int = 0) -> list[dict]:
    """Users ``u0``..``u5`` like 90 % of what they see, the others 10 %; texts are neutral."""
    rng = random.Random(seed)
    events = []
    for index in range(count):
        user = rng.randrange(USERS)
        fan = user < USERS // 2
        label = rng.random() < (0.9 if fan else 0.1)
        item = rng.randrange(ITEMS)
        events.append(
            {
                "event_id": f"ev-{index}",
                "user_id": f"u{user}",
                "item_id": f"i{item}",
                "text": f"film number {item} | Drama",
                "context": "liked: film number 3 | disliked: film number 7",
                "label": int(label),
                "ts": 1_700_000_000_000 + index * 1000,
            }
        )
    return events


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in user_driven_events(EVENTS)), "utf-8")
    return path


@pytest.mark.slow
def test_hybrid_lineages_are_scored_fresh_and_with_their_ids(events_file, tmp_path, tiny_model_dir):
    code = main(
        [
            "evaluate", str(events_file), "--out", str(tmp_path / "out"), "--base-model", tiny_model_dir,
            "--contenders", "online_lora,online_hybrid,online_ids,popularity,river_fm", "--chunk-size", str(CHUNK),
            "--batch-size", "16",
            "--fast-chunk-size", str(FAST_CHUNK), "--fast-batch-size", str(FAST_BATCH), "--max-length", "32",
        ]
    )  # fmt: skip
    assert code == 0
    document = json.loads((tmp_path / "out" / "results.json").read_text("utf-8"))
    contenders = document["contenders"]
    assert list(contenders) == ["online_lora", "online_hybrid", "online_ids", "popularity", "river_fm"]

    warmup = CHUNK  # 10 % of 384 rounds down to no chunk; the warm-up is at least one
    scored = EVENTS - warmup
    cold = cold_events([e["item_id"] for e in user_driven_events(EVENTS)])[warmup:]
    for name, result in contenders.items():
        assert result["n"] == scored, name
        assert len(result["windows"]) == 8, name  # the default: 8 equal windows
        assert result["cold"]["n"] == int(cold.sum()), name
    for name in ("online_hybrid", "online_ids"):
        lag = contenders[name]["params"]["freshness"]
        assert contenders[name]["params"]["chunk"] == FAST_CHUNK
        # A version per fast chunk, each trained on every event before the chunk.
        assert lag["versions_served"] == math.ceil(scored / FAST_CHUNK), name
        assert lag["lag_events_max"] == FAST_CHUNK - 1, name
        # Only the user id predicts the label: the requests carried it and the model learnt it.
        assert contenders[name]["auc"] > 0.8, name
    # The transformer lineage keeps its slow chunks in the same run.
    assert contenders["online_lora"]["params"]["chunk"] == CHUNK
    assert contenders["online_lora"]["params"]["freshness"]["versions_served"] == math.ceil(scored / CHUNK)
    assert contenders["online_lora"]["params"]["freshness"]["lag_events_max"] == CHUNK - 1
    assert contenders["popularity"]["params"]["chunk"] == 1
    assert contenders["popularity"]["params"]["freshness"]["lag_events_max"] == 0
    markdown = (tmp_path / "out" / "results.md").read_text("utf-8")
    assert f"| online_hybrid | {FAST_CHUNK} | {scored} |" in markdown
    assert f"| popularity | 1 | {scored} |" in markdown


def test_popularity_is_scored_per_event_on_the_served_contenders_events():
    raw = user_driven_events(200)
    events = EventSlice(raw, [decode_event(json.dumps(e).encode()) for e in raw], 0, 0)
    plan = plan_run(len(raw), ChunkSizes(batch_size=8, chunk_size=32))
    cold = cold_events([e["item_id"] for e in raw])[plan.warmup :]

    span = ScoredSpan(plan.warmup, 160, window=40, cold=cold[: 160 - plan.warmup])
    (result,) = in_process_results(events, ["popularity"], span, seed=0)

    assert result.n == 160 - plan.warmup == 128
    assert [w.n for w in result.windows] == [40, 40, 40, 8]
    assert result.params["chunk"] == 1 and result.params["freshness"]["lag_events_max"] == 0
    assert result.cold.n == int(cold[:128].sum()) > 0
    # Users' like-rates separate fans from the rest well before the scored events.
    assert result.auc > 0.85
    assert sum(w.positives for w in result.windows) == sum(e["label"] for e in raw[plan.warmup : 160])
