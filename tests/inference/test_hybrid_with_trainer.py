"""The real hybrid trainer publishes, the real server follows: its scores are the trainer's.

Embedded broker → TrainerService (``STREAMTUNE_MODEL_KIND=hybrid``, a snapshot every 3
versions, deltas between) → directory store → ``build_app`` over real HTTP. Once the trainer
has published everything it consumed, the server's predictions for known and unknown ids
equal the trainer's live model's, so the chain the server applied holds the trainer's tables.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.testing.crash_harness import event_records, produce_records, published_records, trainer_thread
from streamtune.testing.events import synthetic_events
from streamtune.testing.network import wait_for
from tests.inference.serving import serving

pytestmark = pytest.mark.slow


def test_the_server_scores_as_the_live_hybrid_trainer(settings):
    settings = settings.model_copy(
        update={
            "model_kind": "hybrid",
            "batch_size": 8,
            "max_batch_latency_ms": 100,
            "snapshot_every": 3,
            "gate_tolerance": 1e6,  # serving is under test, not whether the tiny model improves
            "gate_auc_tolerance": 1.0,
            "model_process": "off",  # the live model scores the probe beside the server
        }
    )
    store = CheckpointStore(settings.checkpoint_dir)
    events = synthetic_events(120, seed=4, prefix="served")

    with trainer_thread(settings) as trainer, serving(settings) as server:
        for wave in range(3):
            produce_records(
                settings.bootstrap_servers, settings.events_topic, event_records(events[wave * 40 : (wave + 1) * 40])
            )
            wait_for(lambda wave=wave: published_records(store) >= (wave + 1) * 40, 120, what=f"wave {wave} published")
        latest = store.latest_version()
        wait_for(lambda: httpx.get(f"{server.url}/v1/model").json()["model_version"] == latest, 30, what="LATEST")
        probe = [{**e, "context": None} for e in synthetic_events(30, seed=9, prefix="probe")]
        probe += [{"user_id": "nobody", "item_id": "no item", "text": "a good film", "context": None}]
        instances = [{k: e[k] for k in ("user_id", "item_id", "text")} for e in probe]
        answer = httpx.post(f"{server.url}/v1/predict", json={"instances": instances}).json()
        live = trainer.family.model
        pseudonym = trainer.pseudonymiser.pseudonym
        expected = live.predict([{**e, "user_id": pseudonym(e["user_id"])} for e in probe])
    assert any(store.read_manifest(v).is_delta for v in store.versions())
    assert store.read_manifest(latest).model_kind == "hybrid"
    scores = [p["score"] for p in answer["predictions"]]
    np.testing.assert_allclose(scores, expected.probabilities, rtol=1e-5, atol=1e-7)
    assert [p["user_known"] for p in answer["predictions"]] == expected.user_known.tolist()
    assert [p["item_known"] for p in answer["predictions"]] == expected.item_known.tolist()
    assert sum(expected.user_known) >= 20  # most probe users were trained on
