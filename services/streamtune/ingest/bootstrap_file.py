"""The offline part: a historical JSONL file of events as micro-batches for the trainer.

Each line is one event in the same format as the stream's (``events/event.schema.json``);
invalid lines are counted and skipped, exactly as the stream's would be dead-lettered. The
batches carry no Kafka offsets, so training on them leaves the stream position untouched.
The file is read lazily, so its size is not bounded by memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from streamtune.events import Event, InvalidEvent, decode_event
from streamtune.ingest.handoff import TrainingBatch
from streamtune.modeling.encoding import encode_pairs

logger = logging.getLogger(__name__)


@dataclass
class BootstrapSummary:
    lines: int = 0
    invalid: int = 0
    blank: int = 0


def historical_batches(
    path: Path,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    max_length: int,
    max_text_chars: int,
    summary: BootstrapSummary,
    pseudonymise: Callable[[str | None], str | None] | None = None,
) -> Iterator[TrainingBatch]:
    """Tokenized batches of the valid events of ``path``, in file order; fills ``summary``.

    User ids are replaced by ``pseudonymise`` (without one they are dropped), as at ingest."""
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
                yield _batch(pending, tokenizer, max_length, pseudonymise)
                pending = []
    if pending:
        yield _batch(pending, tokenizer, max_length, pseudonymise)


def _batch(
    events: list[Event],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    pseudonymise: Callable[[str | None], str | None] | None,
) -> TrainingBatch:
    inputs = encode_pairs(tokenizer, [e.text for e in events], [e.context for e in events], max_length)
    event_times = [e.ts_ms for e in events if e.ts_ms is not None]
    return TrainingBatch(
        generation=0,
        inputs=inputs,
        labels=torch.tensor([e.label for e in events], dtype=torch.float32),
        event_ids=[e.event_id for e in events],
        offsets={},
        data_watermark_ms=max(event_times, default=None),
        user_ids=[pseudonymise(e.user_id) if pseudonymise else None for e in events],
    )
