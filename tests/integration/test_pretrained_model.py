"""The real pretrained all-MiniLM-L6-v2 through the real trainer and loader."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.evaluation.scoring import roc_auc
from streamtune.inference.loading import ModelLoader
from streamtune.modeling.device import select_device
from streamtune.testing.events import produce, synthetic_events
from streamtune.testing.network import wait_for
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.service import TrainerService

pytestmark = pytest.mark.slow


def test_minilm_learns_from_the_stream_and_serves_the_version(settings, minilm_dir):
    settings = settings.model_copy(
        update={
            "base_model": None,  # the default: the packaged MiniLM
            "batch_size": 16,
            "learning_rate": 2e-3,
            "warmup_steps": 0,
            "max_length": 32,
        }
    )
    train_events = synthetic_events(192, seed=1, prefix="train")
    probe_events = synthetic_events(64, seed=2, prefix="probe")
    trained = [e for e in train_events if not is_holdout(e["event_id"], settings.holdout_share)]

    trainer = TrainerService(settings).setup()
    assert trainer.family.base_model == minilm_dir
    stop = threading.Event()
    worker = threading.Thread(target=trainer.run, args=(stop,))
    worker.start()
    try:
        produce(settings.kafka_bootstrap_servers, settings.events_topic, train_events)
        store = CheckpointStore(settings.checkpoint_dir)
        wait_for(
            lambda: (v := store.latest_version()) and store.read_manifest(v).examples_seen == len(trained),
            240,
            interval_s=0.5,
            what="a version holding every event",
        )
    finally:
        stop.set()
        worker.join(60)
    latest = store.latest_version()
    manifest = store.verify(latest)
    assert manifest.tuning["tuning"] == "lora"
    assert manifest.base_model == minilm_dir
    assert set(manifest.files) == {"adapter.safetensors", "events.json", "stream_state.safetensors"}
    assert manifest.files["adapter.safetensors"].bytes < 2_000_000  # the adapter only, not 90 MB

    loader = ModelLoader(store, minilm_dir, select_device("cpu"), max_length=32)
    labels = np.array([e["label"] for e in probe_events], dtype=bool)
    texts, contexts = [e["text"] for e in probe_events], [e["context"] for e in probe_events]
    base_auc = roc_auc(labels, np.array(loader.load(0).predict(texts, contexts)))
    tuned_auc = roc_auc(labels, np.array(loader.load(latest).predict(texts, contexts)))
    assert tuned_auc > 0.9, (base_auc, tuned_auc)
    assert tuned_auc > base_auc
