"""The offline part: a historical JSONL file of events as micro-batches for the trainer.

Each line is one event in the same format as the stream's (``events/event.schema.json``);
invalid lines are counted and skipped, exactly as the stream's would be dead-lettered. The
batches carry no Kafka offsets, so training on them leaves the stream position untouched.
The file is read lazily, so its size is not bounded by memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.ingest.training_batch import BatchBuilder, TrainingBatch

logger = logging.getLogger(__name__)


@dataclass
class BootstrapSummary:
    lines: int = 0
    invalid: int = 0
    blank: int = 0


def historical_batches(
    path: Path, builder: BatchBuilder, *, batch_size: int, max_text_chars: int, summary: BootstrapSummary
) -> Iterator[TrainingBatch]:
    """Batches of the valid events of ``path``, in file order, built by ``builder`` exactly as
    the stream's are (model inputs, pseudonyms); fills ``summary``."""
    pending: list[Event] = []
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                summary.blank += 1
                continue
            summary.lines += 1
            decoded = decode_event(raw, max_text_chars)
            if isinstance(decoded, InvalidEvent):
                summary.invalid += 1
                logger.debug("%s:%d skipped (%s): %s", path, number, decoded.reason, decoded.detail)
                continue
            pending.append(decoded)
            if len(pending) == batch_size:
                yield builder.build(pending)
                pending = []
    if pending:
        yield builder.build(pending)
