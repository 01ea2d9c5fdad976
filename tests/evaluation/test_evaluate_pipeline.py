"""`streamtune evaluate` end to end: real broker, trainer and server processes, the tiny model.

Cost on two cores: ~40 s for the full run (six child processes), ~2 x 20 s for the
determinism check (three children each).
"""

from __future__ import annotations

import json
import math

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.cli import main
from streamtune.evaluation.contenders import CONTENDERS, FAST_LINEAGES, POPULARITY
from streamtune.evaluation.served_store import branch_version
from streamtune.testing.events import synthetic_events
from tests.support.versions import publish_perturbed_version

EVENTS = 384
CHUNK = 64
BATCH = 16
WINDOW = 100
# The hybrid contenders have a test of their own (test_evaluate_hybrid.py).
TRANSFORMER_AND_RIVER = [name for name in CONTENDERS if name not in (*FAST_LINEAGES, POPULARITY)]


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in synthetic_events(EVENTS, prefix="ev")), "utf-8")
    return path


def evaluate(events_file, out, model_dir, *extra: str) -> dict:
    code = main(
        [
            "evaluate", str(events_file), "--out", str(out), "--base-model", model_dir,
            "--chunk-size", str(CHUNK), "--batch-size", str(BATCH), "--max-length", "32",
            "--window", str(WINDOW), "--periodic-every", "128", *extra,
        ]
    )  # fmt: skip
    assert code == 0
    return json.loads((out / "results.json").read_text("utf-8"))


@pytest.mark.slow
def test_every_contender_scored_prequentially_through_the_pipeline(events_file, tmp_path, tiny_model_dir):
    document = evaluate(
        events_file, tmp_path / "out", tiny_model_dir, "--work-dir", str(tmp_path / "work"),
        "--contenders", ",".join(TRANSFORMER_AND_RIVER),
    )  # fmt: skip

    contenders = document["contenders"]
    assert list(contenders) == list(TRANSFORMER_AND_RIVER)
    warmup = CHUNK  # 10 % of 384 rounds down to no chunk; the warm-up is at least one
    scored = EVENTS - warmup
    for name, result in contenders.items():
        assert result["n"] == scored, name
        assert 0.0 <= result["auc"] <= 1.0 and result["logloss"] > 0, name
        assert [w["n"] for w in result["windows"]] == [WINDOW, WINDOW, WINDOW, scored - 3 * WINDOW], name

    chunks = math.ceil(scored / CHUNK)
    lag = {name: result["params"]["freshness"] for name, result in contenders.items()}
    # Online: a new version for every chunk, each trained on everything before the chunk.
    for name in ("online_lora", "online_full"):
        assert lag[name]["versions_served"] == chunks
        assert lag[name]["lag_events_max"] == CHUNK - 1
    # Frozen: one version, trained on the warm-up only.
    assert lag["frozen"]["versions_served"] == 1
    assert lag["frozen"]["lag_events_max"] == scored - 1
    # Periodic: the frozen version, then retrains at 192 and 320.
    assert lag["periodic"]["versions_served"] == 3
    assert lag["periodic"]["lag_events_max"] == 128 - 1
    assert lag["river_fm"]["lag_events_max"] == 0
    # The contenders really are different models.
    assert len({round(result["logloss"], 9) for result in contenders.values()}) == len(TRANSFORMER_AND_RIVER)

    meta = document["meta"]
    assert meta["trainer_overrides"]["transformer"]["holdout_share"] == 0.0
    assert meta["scored_events"].startswith(f"{scored} ")
    markdown = (tmp_path / "out" / "results.md").read_text("utf-8")
    for name in TRANSFORMER_AND_RIVER:
        assert f"| {name} | {contenders[name]['params']['chunk']} |" in markdown
    assert "## AUC per window" in markdown and "## Freshness when scoring" in markdown
    assert (tmp_path / "out" / "auc_over_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The frozen server's store holds a copy of the LoRA trainer's warm-up version.
    frozen = CheckpointStore(tmp_path / "work" / "frozen" / "checkpoints")
    assert frozen.versions() == [1]
    assert frozen.verify(1).records_through == warmup


@pytest.mark.slow
def test_same_numbers_twice(events_file, tmp_path, tiny_model_dir, kafka_bootstrap):
    runs = [
        evaluate(
            events_file, tmp_path / f"out{index}", tiny_model_dir,
            "--contenders", "online_lora,periodic,river_logreg", "--bootstrap", kafka_bootstrap, "--limit", "256",
        )["contenders"]
        for index in range(2)
    ]  # fmt: skip
    for contenders in runs:
        for result in contenders.values():
            result.pop("wall_seconds")
    assert runs[0] == runs[1]


def test_branch_is_a_verified_copy_with_the_same_provenance(tmp_path, tiny_model_dir):
    source = CheckpointStore(tmp_path / "source")
    publish_perturbed_version(source, tiny_model_dir, seed=1)
    original = publish_perturbed_version(source, tiny_model_dir, seed=2)
    target = CheckpointStore(tmp_path / "target")

    copied = branch_version(source, original.version, target)

    assert copied.version == 1 and target.latest_version() == 1
    assert target.verify(1) == copied
    assert copied.files == original.files
    assert (copied.kafka_offsets, copied.data_watermark_ms) == (original.kafka_offsets, original.data_watermark_ms)
    assert copied.parent_version is None


def test_a_plan_the_trainers_cannot_keep_is_refused_before_anything_starts(events_file, tmp_path, capsys):
    code = main(["evaluate", str(events_file), "--out", str(tmp_path / "out"), "--chunk-size", "100"])
    assert code == 1
    assert "multiple of its batch size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
