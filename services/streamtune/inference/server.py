"""Wire the inference service from the settings and run it under uvicorn."""

from __future__ import annotations

import gc
import logging
import uuid

import uvicorn
from fastapi import FastAPI

from streamtune.checkpoints import is_object_storage, open_store
from streamtune.config import Settings
from streamtune.errors import ConfigurationError
from streamtune.inference.admission import Admission
from streamtune.inference.app import create_app
from streamtune.inference.app_parts import ApiOptions, ServingParts
from streamtune.inference.backends import BackendSpec
from streamtune.inference.backends.selection import BackendChooser
from streamtune.inference.backends.threads import configure_threads, forward_plan
from streamtune.inference.batch_policy import BatchingPolicy
from streamtune.inference.batching import DynamicBatcher
from streamtune.inference.delta_chain import HybridLoader
from streamtune.inference.follower import Announcements, VersionFollower
from streamtune.inference.hybrid_model import RowMaker
from streamtune.inference.loading import ForwardPlacement, ModelLoader, ServedModel
from streamtune.inference.slot import ModelSlot
from streamtune.inference.text_cache import ServerTexts
from streamtune.kafka.clients import make_consumer
from streamtune.metrics import ServingMetrics
from streamtune.modeling.base import resolve_base_model
from streamtune.modeling.device import describe, select_device
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder
from streamtune.privacy.pseudonyms import Pseudonymiser
from streamtune.supervision.standby import wait_for_go

logger = logging.getLogger(__name__)


def build_app(settings: Settings, metrics: ServingMetrics | None = None) -> FastAPI:
    """The inference app for these settings (nothing loads until the app starts)."""
    metrics = metrics or ServingMetrics()
    metrics.pinned_model_version.set(-1)
    store = open_store(settings.checkpoint_uri, settings.checkpoint_dir, settings.keep_versions)
    device = select_device(settings.device)
    hybrid = settings.model_kind == "hybrid"
    plan = configure_threads(
        forward_plan(settings.serve_threads, settings.serve_workers, device.type == "cuda", python_bound=hybrid)
    )
    backends = BackendChooser(
        BackendSpec(settings.serve_backend, settings.serve_quantize),
        metrics,
        device,
        threads=plan.threads,
        onednn=settings.serve_cpu_linear == "onednn",
    )
    base_model = resolve_base_model(settings.base_model)
    logger.info("serving on %s from store %s (base model %s)", describe(device), store.location, base_model)

    def current() -> ServedModel | None:
        return slot.current

    batcher = DynamicBatcher(
        current,
        metrics,
        BatchingPolicy.from_settings(settings, plan.workers),
        Admission(settings.serve_max_queue_ms / 1000, settings.serve_client_share),
    )
    rows: RowMaker | None = None
    if settings.model_kind == "hybrid":
        if is_object_storage(settings.checkpoint_uri) and settings.pseudonymise_key is None:
            # The generated key would live in this machine's cache directory, not the trainer's:
            # no user id would ever find its row.
            raise ConfigurationError(
                "STREAMTUNE_MODEL_KIND=hybrid with the store on object storage needs "
                "STREAMTUNE_PSEUDONYMISE_KEY, the same as the trainer's"
            )
        # The trainer's encoder (the same base model), its embeddings cached here; user ids are
        # pseudonymised with the trainer's key, so they find the trainer's rows.
        encoder = SentenceEncoder(base_model, max_length=settings.hybrid_text_max_length)  # as the trainer's
        hybrid_loader = HybridLoader(store, ServerTexts(encoder))
        load, load_version = hybrid_loader.load, hybrid_loader.load_detached  # see HybridLoader
        key = settings.pseudonymise_key.get_secret_value() if settings.pseudonymise_key else None
        rows = RowMaker(Pseudonymiser.for_store(key, store.root))
    else:
        placement = ForwardPlacement(warm_up_runner=batcher.run_exclusive, backends=backends)
        load = load_version = ModelLoader(store, base_model, device, settings.max_length, placement).load
    slot: ModelSlot[ServedModel] = ModelSlot(load, metrics)

    def start_follower() -> VersionFollower:
        consumer = make_consumer(
            settings,
            group_id=f"streamtune-serve-{uuid.uuid4().hex[:12]}",  # never joins: partitions are assigned
            **{"auto.offset.reset": "latest"},
        )
        announcements = Announcements(consumer, settings.models_topic)
        follower = VersionFollower(store, slot, announcements, settings.store_poll_seconds, metrics)
        follower.start()
        return follower

    parts = ServingParts(slot, metrics, batcher, store, start_follower, load_version, rows)
    return create_app(parts, ApiOptions.from_settings(settings))


def serve(settings: Settings, standby: bool = False) -> None:
    """Build the app and serve it; on ``standby`` (a warm spare of `streamtune up`) wait after
    the slow part of the start for the supervisor's word (:mod:`streamtune.supervision.standby`)."""
    app = build_app(settings)
    # Everything imported so far (torch, transformers: millions of objects) lives as long as the
    # process; frozen, the collector stops re-scanning it, and a full collection under load no
    # longer stalls every request in flight (measured: ~1 s stalls every ~5 s at 400 req/s).
    gc.freeze()
    if standby:
        logger.info("warm spare ready: waiting to replace the server")
        if not wait_for_go():
            return
        logger.info("warm spare taking over as the server")
    # log_config=None: uvicorn's records go to the handler the entry point configured (text or JSON).
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
    )
