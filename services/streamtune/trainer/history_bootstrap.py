"""Bootstrap: train the base model on a historical JSONL file before the stream, and publish
the result as the first version.

The file is read into batches exactly as the stream is (:mod:`streamtune.ingest.bootstrap_file`,
the same :class:`~streamtune.ingest.training_batch.BatchBuilder`), and each batch goes through
the trainer's own step (:meth:`~streamtune.trainer.service.TrainerService.learn`): routing,
holdout, prequential scores; then the gate judges the result like any candidate.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from streamtune.checkpoints import Manifest
from streamtune.errors import ConfigurationError
from streamtune.ingest.bootstrap_file import BootstrapSummary, historical_batches

if TYPE_CHECKING:
    from streamtune.trainer.service import TrainerService

logger = logging.getLogger(__name__)


def bootstrap_from_file(trainer: TrainerService, path: Path) -> Manifest | None:
    """Train the base model on a historical JSONL file and publish it as the first version.

    Skipped when the store already holds a version (a restarted trainer must not train the
    history twice). The file's events go through the same routing as the stream's
    (deduplication, holdout, gate), in one pass in file order.
    """
    if trainer.published is not None:
        logger.info("store already holds version %d: not bootstrapping from %s", trainer.published.version, path)
        return None
    if not path.is_file():
        raise ConfigurationError(f"bootstrap file {path} does not exist")
    started = time.perf_counter()
    summary = BootstrapSummary()
    settings = trainer.settings
    batches = historical_batches(
        path,
        trainer.batch_builder(),
        batch_size=settings.batch_size,
        max_text_chars=settings.max_text_chars,
        summary=summary,
    )
    for batch in batches:
        trainer.learn(batch)
    logger.info(
        "bootstrap: %d events from %s (%d invalid skipped), %d trained in %.1f s",
        summary.lines,
        path,
        summary.invalid,
        trainer.ledger.examples,
        time.perf_counter() - started,
    )
    if not trainer.ledger.batches or not trainer.publish():
        logger.error("bootstrap produced no publishable version; the stream starts from the base model")
        trainer.restore_published()
    return trainer.published
