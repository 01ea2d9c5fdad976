"""The bounded hand-off between the ingest thread and the training step.

A rebalance must never lose or repeat an example. When partitions are revoked the ingest thread
calls :meth:`BatchHandoff.invalidate`, which waits for the step in progress (if any) to finish,
then drops every queued batch: they are re-read from the trained position after reassignment.
Batches carry the generation they were cut in, so one cut before a rebalance is never trained
after it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

from streamtune.ingest.training_batch import TrainingBatch


class BatchHandoff:
    """A bounded queue of batches with a generation counter guarding rebalances."""

    def __init__(self, max_batches: int) -> None:
        self._queue: queue.Queue[TrainingBatch] = queue.Queue(maxsize=max_batches)
        self._step_lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def depth(self) -> int:
        return self._queue.qsize()

    def busy(self) -> bool:
        """Whether the trainer has work in hand: a step running or batches queued."""
        return self._step_lock.locked() or not self._queue.empty()

    def offer(self, batch: TrainingBatch, timeout_s: float = 0.0) -> bool:
        """Queue a batch, waiting up to ``timeout_s`` for room; False when still full (the
        caller pauses consumption and retries)."""
        try:
            if timeout_s > 0:
                self._queue.put(batch, timeout=timeout_s)
            else:
                self._queue.put_nowait(batch)
        except queue.Full:
            return False
        return True

    def take(self, timeout_s: float) -> TrainingBatch | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    @contextlib.contextmanager
    def claim(self, batch: TrainingBatch) -> Iterator[bool]:
        """Hold the step lock while training ``batch``; yields False if it went stale."""
        with self._step_lock:
            yield batch.generation == self._generation

    @contextlib.contextmanager
    def quiesced(self) -> Iterator[None]:
        """Wait for the step in progress and keep the next one from starting."""
        with self._step_lock:
            yield

    def invalidate(self) -> int:
        """Start a new generation and drop every queued batch; returns how many."""
        with self._step_lock:
            self._generation += 1
            dropped = 0
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    return dropped
                dropped += 1
