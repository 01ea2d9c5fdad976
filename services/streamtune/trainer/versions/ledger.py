"""What the trainer did since its last published version: the next version's bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamtune.checkpoints import Manifest
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.trainer.versions.files import VersionEvents
from streamtune.trainer.versions.publisher import VersionDraft


@dataclass(frozen=True)
class StreamStanding:
    """Where the trainer stands when it drafts a version: the trained Kafka position, the
    examples seen by the lineage, the figures for the manifest and the stream state to save."""

    position: dict[str, int]
    examples_seen: int
    metrics: dict[str, float]
    stream_state: dict[str, np.ndarray]


class VersionLedger:
    """Trained, discarded, held-out and duplicate events since the last publish."""

    def __init__(self) -> None:
        self.batches = 0
        self.examples = 0
        self.last_loss: float | None = None
        self.data_watermark_ms: int | None = None
        self.produced_watermark_ms: int | None = None
        self.produced_oldest_ms: int | None = None  # of the events trained since the last publish
        self.trained: list[str] = []
        self.discarded: list[str] = []
        self.held_out = 0
        self.duplicates = 0

    def consumed(self, held_out: int, duplicates: int) -> None:
        """A batch of valid events was taken off the stream (whatever was trained of it)."""
        self.batches += 1
        self.held_out += held_out
        self.duplicates += duplicates

    def trained_on(self, batch: TrainingBatch, event_ids: list[str], loss: float) -> None:
        self.examples += len(event_ids)
        self.trained.extend(event_ids)
        self.last_loss = loss
        self.data_watermark_ms = _max(self.data_watermark_ms, batch.data_watermark_ms)
        self.produced_watermark_ms = _max(self.produced_watermark_ms, batch.produced_watermark_ms)
        self.produced_oldest_ms = _min(self.produced_oldest_ms, batch.produced_oldest_ms)

    def discard_training(self) -> int:
        """The weights went back to the published ones: what was trained is now discarded.

        The ids move to ``discarded`` (the next version records their fate); the counts that
        describe the weights start over. Returns how many examples were discarded.
        """
        discarded = self.examples
        self.discarded.extend(self.trained)
        self.trained = []
        self.batches = self.examples = 0
        self.last_loss = self.data_watermark_ms = self.produced_watermark_ms = self.produced_oldest_ms = None
        return discarded

    def unpublished(self) -> int:
        """Batches and discarded events that wait for a version."""
        return self.batches + len(self.discarded)

    def only_discarded(self) -> bool:
        """Events were discarded and nothing was trained since."""
        return bool(self.discarded) and not self.examples

    def draft(self, snapshot: object, parent: Manifest | None, stream: StreamStanding) -> VersionDraft:
        """The next version: ``snapshot`` (the model), trained from ``parent``, standing at
        ``stream`` (position, examples seen, scores, stream state)."""
        return VersionDraft(
            snapshot=snapshot,
            parent_version=parent.version if parent else None,
            kafka_offsets=dict(stream.position),
            examples_seen=stream.examples_seen,
            examples_in_version=self.examples,
            last_train_loss=self.last_loss,
            # Watermarks never go back: a version's are at least its parent's.
            data_watermark_ms=_max(self.data_watermark_ms, parent.data_watermark_ms if parent else None),
            produced_watermark_ms=_max(self.produced_watermark_ms, parent.produced_watermark_ms if parent else None),
            produced_oldest_ms=self.produced_oldest_ms,
            metrics=stream.metrics,
            events=self.events(),
            stream_state=stream.stream_state,
        )

    def events(self) -> VersionEvents:
        return VersionEvents(
            trained=list(self.trained),
            discarded=list(self.discarded),
            held_out=self.held_out,
            duplicates=self.duplicates,
        )


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
