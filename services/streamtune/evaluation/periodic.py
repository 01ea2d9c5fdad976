"""The periodic-retraining contender: every N events, retrain from the frozen version on
everything seen so far, one pass, and serve the result until the next retrain.

This is the usual batch alternative to online learning (a nightly job on all data so far). It
runs in the evaluation process with the trainer's own building blocks (model wrapping,
tokenization, :class:`OnlineLearner`), not through Kafka: a retrain is a batch job over a
growing prefix of the stream, which a consumer group would only re-read. Its versions are
published into the contender's own checkpoint store with the store's ordinary protocol, and an
inference server serves them exactly as it serves the trainer's.

Each retrain starts from the frozen version's weights with a fresh optimiser and visits the
prefix once in a seeded random order (shuffling is what a batch job does; it also keeps the
newest events from dominating the last steps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.config import Settings
from streamtune.events import Event
from streamtune.modeling import device as devices
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.text.learner import OnlineLearner
from streamtune.modeling.text.setup import learner_config
from streamtune.modeling.weights import apply_state, load_state, save_state, trainable_state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrained:
    """The weights one retrain produced and the loss of its last batch (None: no batch)."""

    state: dict[str, torch.Tensor]
    last_loss: float | None


class PeriodicRetrainer:
    """Retrains copies of one frozen version and publishes them into a store.

    Parameters
    ----------
    settings
        Learning rate, weight decay, warm-up steps, batch size, max length, device and seed,
        as the online trainer of the same tuning mode uses them.
    frozen_dir
        Directory of the frozen version (weights and manifest).
    frozen
        Its manifest: base model and tuning spec of every retrained version.
    """

    def __init__(self, settings: Settings, frozen_dir: Path, frozen: Manifest) -> None:
        self.settings = settings
        self.frozen = frozen
        self.spec = TuningSpec.from_dict(frozen.tuning)
        self.device = devices.select_device(settings.device)
        self.tokenizer = load_tokenizer(frozen.base_model)
        self.model = wrap_for_tuning(load_base_model(frozen.base_model), self.spec)
        self._frozen_state = load_state(frozen_dir, self.spec.tuning)
        self.rounds = 0

    def retrain(self, events: Sequence[Event]) -> Retrained:
        """One shuffled pass over ``events`` from the frozen weights; returns the new weights and
        the last batch's loss. Seeded by the settings' seed and the round, so reruns agree."""
        self.rounds += 1
        seed = self.settings.seed + self.rounds
        torch.manual_seed(seed)  # LoRA dropout
        apply_state(self.model, self._frozen_state, self.spec.tuning)
        # The online text family's own config (head and adapter learning rates, dropout, ...):
        # a retrain differs from the online learner in what it sees, not in how it steps.
        learner = OnlineLearner(self.model, self.device, learner_config(self.settings))
        order = np.random.default_rng(seed).permutation(len(events))
        batch_size = self.settings.batch_size
        loss = None
        started = time.perf_counter()
        for start in range(0, len(order), batch_size):
            batch = [events[index] for index in order[start : start + batch_size]]
            inputs = encode_pairs(
                self.tokenizer, [e.text for e in batch], [e.context for e in batch], self.settings.max_length
            )
            labels = torch.tensor([e.label for e in batch], dtype=torch.float32)
            loss = learner.train_step(inputs, labels)
        logger.info(
            "periodic retrain %d: %d events, %d steps in %.1f s, last loss %s",
            self.rounds, len(events), learner.steps, time.perf_counter() - started, loss,
        )  # fmt: skip
        return Retrained(trainable_state(self.model, self.spec.tuning), loss)

    def publish(
        self,
        store: CheckpointStore,
        retrained: Retrained,
        *,
        offsets: dict[str, int],
        examples: int,
        data_watermark_ms: int | None,
    ) -> Manifest:
        """Publish retrained weights as the store's next version (a child of the frozen one)."""
        tuning = self.spec.tuning
        return store.publish(
            lambda directory: save_state(retrained.state, tuning, directory),
            lambda version, files: Manifest(
                version=version,
                parent_version=store.latest_version(),
                base_model=self.frozen.base_model,
                tuning=self.spec.to_dict(),
                created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                files=files,
                kafka_offsets=dict(offsets),
                examples_seen=examples,
                examples_in_version=examples,
                last_train_loss=retrained.last_loss,
                max_length=self.settings.max_length,
                data_watermark_ms=data_watermark_ms,
            ),
        )
