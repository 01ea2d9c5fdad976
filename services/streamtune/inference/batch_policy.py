"""How the batcher (:class:`~streamtune.inference.batching.DynamicBatcher`) turns queued
requests into forward passes: its limits, a view of the settings."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamtune.config import Settings


@dataclass(frozen=True)
class BatchingPolicy:
    """At most ``max_batch`` rows a forward pass; the oldest request waits at most
    ``max_wait_s`` for company; at most ``max_queued`` rows wait (a hard ceiling: beyond it,
    :class:`~streamtune.errors.QueueFullError`); a request that names no deadline gets
    ``default_deadline_s``; ``workers`` threads take batches from the one queue."""

    max_batch: int = 64
    max_wait_s: float = 0.005
    max_queued: int = 1024
    default_deadline_s: float = math.inf
    workers: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, workers: int) -> BatchingPolicy:
        """The settings' policy, run by ``workers`` threads (as the thread plan sized them)."""
        return cls(
            max_batch=settings.serve_max_batch,
            max_wait_s=settings.serve_max_wait_ms / 1000,
            max_queued=max(settings.serve_max_queue, settings.max_instances),  # a full request always fits
            default_deadline_s=settings.serve_default_deadline_ms / 1000,
            workers=workers,
        )
