"""The unit of work between ingest and training, and the one place that builds it from events.

The stream (:mod:`streamtune.ingest.consumer`) and the bootstrap file
(:mod:`streamtune.ingest.bootstrap_file`) both turn decoded events into a :class:`TrainingBatch`
with :class:`BatchBuilder`, so both paths give a model family the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from streamtune.events import Event
from streamtune.privacy import user_tags

# (item texts, contexts) → model inputs, one row per pair; chosen by the model family.
BatchEncoder = Callable[[Sequence[str], Sequence[str | None]], dict[str, torch.Tensor]]
Pseudonymise = Callable[[str | None], str | None]
_Row = TypeVar("_Row")


@dataclass
class TrainingBatch:
    """Decoded stream examples, the model inputs prepared from them, and the Kafka positions
    they complete.

    ``offsets`` maps ``"topic:partition"`` to the next offset after this batch: every record
    before it is either in this batch, in an earlier one, or in the dead-letter topic. A batch
    may be empty (only invalid records were read) and then only moves the position.
    ``inputs`` are what the model family's encoder made of the rows (empty for a family that
    encodes nothing on the ingest thread); the raw fields — ``texts``, ``contexts``,
    ``item_ids``, ``labels``, ``event_ids`` — are kept next to them, one entry per row.
    ``user_ids`` holds pseudonyms (:mod:`streamtune.privacy`), never the ids events carry.
    """

    generation: int
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    event_ids: list[str]
    offsets: dict[str, int]
    data_watermark_ms: int | None = None
    produced_watermark_ms: int | None = None
    produced_oldest_ms: int | None = None  # Kafka timestamp of the batch's oldest record
    user_ids: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    contexts: list[str | None] = field(default_factory=list)
    item_ids: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_ids)

    @classmethod
    def of_inputs(cls, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> TrainingBatch:
        """Stored rows known by their model inputs and labels only (the holdout's, the replay
        buffer's): no ids, no raw fields, no position."""
        return cls(generation=0, inputs=inputs, labels=labels, event_ids=[""] * len(labels), offsets={})

    def user_tags(self) -> np.ndarray:
        """Pseudonym tags of the rows (0: no user, or a batch without user ids)."""
        if len(self.user_ids) != len(self):
            return np.zeros(len(self), dtype=np.int64)
        return user_tags(self.user_ids)

    def select(self, rows: np.ndarray) -> TrainingBatch:
        """The batch restricted to ``rows`` (indices, in that order), without Kafka positions."""
        index = rows.tolist()
        return TrainingBatch(
            generation=self.generation,
            inputs=select_rows(self.inputs, rows),
            labels=self.labels.index_select(0, torch.from_numpy(rows.astype(np.int64))),
            event_ids=[self.event_ids[row] for row in index],
            offsets={},
            user_ids=_pick(self.user_ids, index),
            texts=_pick(self.texts, index),
            contexts=_pick(self.contexts, index),
            item_ids=_pick(self.item_ids, index),
        )


def select_rows(inputs: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """The given rows of a batch of model inputs."""
    index = torch.from_numpy(rows.astype(np.int64))
    return {name: tensor.index_select(0, index) for name, tensor in inputs.items()}


def _pick(values: list[_Row], rows: list[int]) -> list[_Row]:
    return [values[row] for row in rows] if values else []


class BatchBuilder:
    """Decoded events → :class:`TrainingBatch`: the family's encoder, labels, pseudonyms, watermarks.

    ``encode`` is the model family's (None: the batch carries the raw fields only);
    ``pseudonymise`` replaces user ids before anything is kept (without it they are dropped);
    ``pin_memory`` pins the tensors for a non-blocking copy to a CUDA device.
    """

    def __init__(
        self, encode: BatchEncoder | None, pseudonymise: Pseudonymise | None = None, *, pin_memory: bool = False
    ) -> None:
        self._encode = encode
        self._pseudonymise = pseudonymise
        self._pin_memory = pin_memory

    def build(
        self,
        events: Sequence[Event],
        *,
        generation: int = 0,
        offsets: dict[str, int] | None = None,
        produced_ms: Sequence[int | None] = (),
    ) -> TrainingBatch:
        """A batch of ``events`` (``produced_ms``: their Kafka timestamps, where known)."""
        texts = [e.text for e in events]
        contexts = [e.context for e in events]
        inputs = self._encode(texts, contexts) if events and self._encode is not None else {}
        labels = torch.from_numpy(np.fromiter((e.label for e in events), dtype=np.float32, count=len(events)))
        if self._pin_memory and events:
            inputs = {name: tensor.pin_memory() for name, tensor in inputs.items()}
            labels = labels.pin_memory()
        event_times = [e.ts_ms for e in events if e.ts_ms is not None]
        produced = [ms for ms in produced_ms if ms is not None]
        return TrainingBatch(
            generation=generation,
            inputs=inputs,
            labels=labels,
            event_ids=[e.event_id for e in events],
            offsets=dict(offsets or {}),
            data_watermark_ms=max(event_times, default=None),
            produced_watermark_ms=max(produced, default=None),
            produced_oldest_ms=min(produced, default=None),
            user_ids=[self._pseudonymise(e.user_id) if self._pseudonymise else None for e in events],
            texts=texts,
            contexts=contexts,
            item_ids=[e.item_id for e in events],
        )
