"""`train --bootstrap FILE`: the offline history becomes version 1, then the live stream
continues from it — in another process lifetime, with duplicates of the history skipped."""

from __future__ import annotations

import json
import threading

import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.cli import _parser
from streamtune.testing.crash_harness import event_records, produce_records, trainer_metric
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.service import TrainerService
from streamtune.trainer.versions.lineage import audit_lineage

pytestmark = pytest.mark.slow


def trained_ids(events, share):
    return {e["event_id"] for e in events if not is_holdout(e["event_id"], share)}


def test_bootstrap_publishes_version_1_and_the_stream_continues_from_it(settings, tmp_path):
    settings = settings.model_copy(update={"gate_tolerance": 1e6, "gate_auc_tolerance": 1.0})
    history = synthetic_events(40, seed=6, prefix="hist")
    history_file = tmp_path / "history.jsonl"
    lines = [json.dumps(e) for e in history]
    lines[5:5] = ["", "not json", json.dumps({"event_id": "x", "label": 1})]  # blank and invalid lines
    history_file.write_text("\n".join(lines) + "\n")
    store = CheckpointStore(settings.checkpoint_dir)

    offline = TrainerService(settings).setup()
    manifest = offline.bootstrap(history_file)
    assert manifest is not None and manifest.version == 1 and manifest.parent_version is None
    assert manifest.kafka_offsets == {}  # the stream position is untouched
    assert manifest.examples_seen == len(trained_ids(history, settings.holdout_share))
    assert offline.bootstrap(history_file) is None  # never twice into one lineage

    # A new trainer (a restart): resumes from version 1, its dedupe window included.
    live = synthetic_events(16, seed=7, prefix="live")
    redelivered = history[:3]
    online = TrainerService(settings).setup()
    assert online.bootstrap(history_file) is None
    stop = threading.Event()
    worker = threading.Thread(target=online.run, args=(stop,))
    worker.start()
    try:
        produce_records(settings.bootstrap_servers, settings.events_topic, event_records(live + redelivered))
        wait_for(
            lambda: (v := store.latest_version()) and store.read_manifest(v).records_through == 19,
            90,
            interval_s=0.2,
            what="the live events published",
        )
    finally:
        stop.set()
        worker.join(60)

    audit = audit_lineage(store)
    assert audit.versions[0] == 1 and len(audit.versions) > 1
    assert audit.repeated() == {}
    share = settings.holdout_share
    assert set(audit.trained) == trained_ids(history, share) | trained_ids(live, share)
    assert trainer_metric(online, "streamtune_duplicate_events_total") == 3


def test_train_takes_a_bootstrap_file():
    args = _parser().parse_args(["train", "--bootstrap", "history.jsonl"])
    assert str(args.bootstrap) == "history.jsonl"
    assert _parser().parse_args(["train"]).bootstrap is None
