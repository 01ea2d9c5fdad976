"""The demo's stream has the preference structure and the drift it announces, and the sample
events file the README replays is valid."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from streamtune.demo.stream import DISLIKED_BEFORE, GENRES_AFTER, GENRES_BEFORE, LIKED_AFTER, LIKED_BEFORE, demo_events
from streamtune.evaluation.scoring import roc_auc
from streamtune.events.schema import decode_event
from streamtune.testing.network import free_port

ROOT = Path(__file__).resolve().parents[2]


def genre(event: dict) -> str:
    return event["text"].rsplit(" | ", 1)[1]


def test_labels_follow_the_known_tastes_and_new_genres_arrive_half_way():
    events = demo_events(4000, seed=3)
    before, after = events[:2000], events[2000:]
    assert {genre(e) for e in before} == GENRES_BEFORE
    assert 0.7 < Counter(genre(e) in GENRES_AFTER for e in after)[True] / len(after) < 0.8
    liked = set(LIKED_BEFORE + LIKED_AFTER)
    # The taste explains the labels up to the 10% noise: a perfect model would score AUC ~0.9.
    taste_auc = roc_auc([e["label"] for e in events], [float(genre(e) in liked) for e in events])
    assert 0.85 < taste_auc < 0.95
    assert any(e["label"] == 1 for e in events if genre(e) in DISLIKED_BEFORE)  # noisy, as real ratings are
    assert demo_events(50, seed=3) == demo_events(50, seed=3)  # reproducible


def test_the_sample_events_file_is_valid_and_reproducible():
    lines = (ROOT / "examples" / "events.jsonl").read_text("utf-8").splitlines()
    decoded = [decode_event(line.encode()) for line in lines]
    assert len(lines) == 300 and all(hasattr(event, "label") for event in decoded)
    assert [json.loads(line) for line in lines] == demo_events(300, seed=7, drift_at=300)


def test_the_demo_says_how_to_start_the_stack_when_no_server_answers(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "streamtune.cli", "demo", "--url", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"no inference server answers at {url}" in done.stderr and "make up" in done.stderr
    assert "Traceback" not in done.stderr
