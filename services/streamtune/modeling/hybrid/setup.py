"""Building the hybrid family from the settings (``STREAMTUNE_MODEL_KIND=hybrid``)."""

from __future__ import annotations

import functools
import logging

import torch

from streamtune.checkpoints import CheckpointStore, open_store
from streamtune.config import Settings
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import resolve_base_model
from streamtune.modeling.device import describe
from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.family import HybridFamily, HybridOptions, VersionAccess
from streamtune.modeling.hybrid.learner import HybridLearner
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.slow_path import EncoderTuner
from streamtune.modeling.hybrid.store_forget import forget_in_store
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder
from streamtune.modeling.hybrid.version_files import RecordingCache

logger = logging.getLogger(__name__)


def build(settings: Settings, device: torch.device, metrics: TrainerMetrics) -> HybridFamily:
    """The hybrid family as the settings describe it. The fast path runs on the CPU (sparse row
    updates and a small dense part); with the slow path on, the text encoder runs on ``device``
    (CUDA when present, bf16 autocast where supported)."""
    # One intra-op thread: the step's tensors are tiny (a micro-batch of rows), and on a loaded
    # machine torch's thread pool spends more waiting on its workers than computing (measured
    # on 2 busy cores: about 80 events/s with 2 threads, about 2,000 with 1).
    torch.set_num_threads(1)
    embedder = tuner = None
    encoder_name = "none"
    if settings.hybrid_text:
        encoder_name = resolve_base_model(settings.base_model)
        slow = settings.hybrid_slow_every > 0
        encoder_device = device if slow else torch.device("cpu")
        encoder = SentenceEncoder(encoder_name, max_length=settings.hybrid_text_max_length, device=encoder_device)
        embedder = TextEmbedder(encoder, RecordingCache())
        if slow:
            tuner = EncoderTuner(encoder, settings.hybrid_slow_every)
            logger.info("hybrid slow path: a LoRA step every %d batches on %s", tuner.every, describe(device))
    config = HybridConfig(
        text_dim=embedder.dim if embedder is not None else HybridConfig.text_dim,
        use_text=embedder is not None,
        user_rows=settings.hybrid_rows,
        item_rows=settings.hybrid_rows,
        word_rows=settings.hybrid_rows,
        admit_after=settings.hybrid_admit_after,
        seed=settings.seed,
    )
    options = HybridOptions(encoder_name, settings.hybrid_text_max_length, settings.snapshot_every)
    store = open_store(settings.checkpoint_uri, settings.checkpoint_dir, settings.keep_versions)
    scrub = None
    if isinstance(store, CheckpointStore):
        scrub = functools.partial(forget_in_store, store)
    access = VersionAccess(store.read_manifest, lambda version: store.checkout(version).directory, scrub)
    logger.info("hybrid family: %s, text encoder %s", config, encoder_name)
    return HybridFamily(HybridLearner(HybridModel(config, embedder), tuner), metrics, options, access)
