"""Wire the inference service from the settings and run it under uvicorn."""

from __future__ import annotations

import logging
import uuid

import uvicorn
from fastapi import FastAPI

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.inference.app import create_app
from streamtune.inference.follower import VersionFollower
from streamtune.inference.loading import ModelLoader
from streamtune.inference.slot import ModelSlot
from streamtune.kafka.clients import make_consumer
from streamtune.metrics import ServingMetrics
from streamtune.modeling.base import resolve_base_model
from streamtune.modeling.device import describe, select_device

logger = logging.getLogger(__name__)


def build_app(settings: Settings, metrics: ServingMetrics | None = None) -> FastAPI:
    metrics = metrics or ServingMetrics()
    store = CheckpointStore(settings.checkpoint_dir, settings.keep_versions)
    device = select_device(settings.device)
    base_model = resolve_base_model(settings.base_model)
    logger.info("serving on %s from store %s (base model %s)", describe(device), store.root, base_model)
    loader = ModelLoader(store, base_model, device, settings.max_length)
    slot: ModelSlot = ModelSlot(loader.load, metrics)

    def start_follower() -> VersionFollower:
        consumer = make_consumer(
            settings,
            group_id=f"streamtune-serve-{uuid.uuid4().hex[:12]}",  # never joins: partitions are assigned
            **{"auto.offset.reset": "latest"},
        )
        follower = VersionFollower(
            store, slot, consumer, settings.models_topic, settings.store_poll_seconds, metrics
        )
        follower.start()
        return follower

    return create_app(
        slot,
        metrics,
        start_follower=start_follower,
        max_instances=settings.max_instances,
        max_text_chars=settings.max_text_chars,
    )


def serve(settings: Settings) -> None:
    app = build_app(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="info", access_log=False)
