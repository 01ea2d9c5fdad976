"""How an evaluation cuts its stream: warm-up, lock-step chunks, periodic retraining points.

Pure arithmetic, no I/O. The driver (:mod:`streamtune.evaluation.pipeline_driver`) feeds the
trainers whole chunks and waits until a version covering each chunk is served, so every boundary
a version must land on is a multiple of the chunk, and every chunk a multiple of the training
batch: the trainer then cuts batches by size alone and publishes exactly at chunk boundaries.

Two speeds: the transformer contenders get a version every ``chunk`` events (a step costs them
a forward and backward pass of the encoder), the fast lineages (the hybrid family: a step is a
few table rows and a small MLP) every ``fast_chunk`` events, as fresh as they are in
production. Fast chunks tile the slow ones, so both speeds share every slow boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamtune.evaluation.errors import EvaluationError


@dataclass(frozen=True)
class RunPlan:
    """Positions (0-based indices into the evaluated events) that drive one evaluation.

    Parameters
    ----------
    n_events
        Events in the evaluated slice.
    warmup
        Events ``[0, warmup)`` are trained on before anything is scored; the frozen contender is
        the version that covers exactly them.
    chunk
        Events scored between two waits for a fresher version.
    periodic_every
        The periodic contender retrains after every ``periodic_every`` scored events.
    fast_chunk
        Events scored between two versions of a fast lineage; divides ``chunk`` (0: ``chunk``).

    Examples
    --------
    >>> plan = RunPlan(n_events=1000, warmup=128, chunk=64, periodic_every=256, fast_chunk=16)
    >>> plan.chunks()[:2], plan.chunks()[-1]
    ([(128, 192), (192, 256)], (960, 1000))
    >>> plan.fast_chunks()[:2], plan.fast_chunks()[-1]
    ([(128, 144), (144, 160)], (992, 1000))
    >>> plan.retrain_points()
    [384, 640, 896]
    >>> plan.is_slow_boundary(192), plan.is_slow_boundary(160), plan.is_slow_boundary(1000)
    (True, False, True)
    """

    n_events: int
    warmup: int
    chunk: int
    periodic_every: int
    fast_chunk: int = 0

    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every scored chunk; only the last one may be short."""
        return self._cut(self.chunk)

    def fast_chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every fast chunk; they tile :meth:`chunks`."""
        return self._cut(self.fast_chunk or self.chunk)

    def is_slow_boundary(self, position: int) -> bool:
        """Whether a (slow) chunk starts or ends at ``position``."""
        return position == self.n_events or (position - self.warmup) % self.chunk == 0

    def _cut(self, size: int) -> list[tuple[int, int]]:
        return [(start, min(start + size, self.n_events)) for start in range(self.warmup, self.n_events, size)]

    def retrain_points(self) -> list[int]:
        """Positions after which the periodic contender retrains (events remain to be scored)."""
        return list(range(self.warmup + self.periodic_every, self.n_events, self.periodic_every))

    @property
    def scored(self) -> int:
        return self.n_events - self.warmup


@dataclass(frozen=True)
class ChunkSizes:
    """The lock-step chunks and the batches they must be whole multiples of: the (slow) chunk
    and its batch, the fast chunk (None: the chunk) and the fast lineages' batch (None: the
    batch)."""

    batch_size: int
    chunk_size: int
    fast_chunk_size: int | None = None
    fast_batch_size: int | None = None


def plan_run(
    n_events: int, sizes: ChunkSizes, *, warmup_share: float = 0.1, periodic_every: int | None = None
) -> RunPlan:
    """Round the requested shares to the boundaries the lock-step protocol needs.

    The warm-up is ``warmup_share`` of the slice rounded down to whole chunks (at least one);
    ``periodic_every`` defaults to a quarter of the scored events, and is rounded up to whole
    chunks. The fast chunk (default: the chunk) must divide the chunk and be a multiple of the
    fast lineages' batch.

    Raises
    ------
    EvaluationError
        If a chunk is not a multiple of its batch, or the slice leaves nothing to score.

    Examples
    --------
    >>> plan_run(20_000, ChunkSizes(batch_size=32, chunk_size=512, fast_chunk_size=32, fast_batch_size=8))
    RunPlan(n_events=20000, warmup=1536, chunk=512, periodic_every=5120, fast_chunk=32)
    """
    batch_size, chunk_size, fast_batch_size = sizes.batch_size, sizes.chunk_size, sizes.fast_batch_size
    _check_chunk("chunk", chunk_size, batch_size)
    fast_chunk = sizes.fast_chunk_size or chunk_size
    _check_chunk("fast chunk", fast_chunk, fast_batch_size or batch_size)
    if chunk_size % fast_chunk:
        raise EvaluationError(
            f"the fast chunk size ({fast_chunk}) must divide the chunk size ({chunk_size}): "
            "both speeds of lineage then share every chunk boundary"
        )
    if not 0 < warmup_share < 1:
        raise EvaluationError(f"the warm-up share must lie in (0, 1), got {warmup_share}")
    warmup = max(chunk_size, int(n_events * warmup_share) // chunk_size * chunk_size)
    if warmup >= n_events:
        raise EvaluationError(
            f"{n_events} events leave nothing to score after a warm-up of {warmup}; "
            "use more events (--limit) or a smaller --chunk-size"
        )
    scored = n_events - warmup
    every = periodic_every if periodic_every is not None else -(-scored // 4)
    if every < 1:
        raise EvaluationError(f"--periodic-every must be >= 1 event, got {every}")
    every = -(-every // chunk_size) * chunk_size  # whole chunks: retrains happen between chunks
    return RunPlan(n_events=n_events, warmup=warmup, chunk=chunk_size, periodic_every=every, fast_chunk=fast_chunk)


def _check_chunk(what: str, chunk_size: int, batch_size: int) -> None:
    if batch_size < 1 or chunk_size < batch_size or chunk_size % batch_size:
        raise EvaluationError(
            f"the {what} size ({chunk_size}) must be a positive multiple of its batch size ({batch_size}): "
            "the trainers cut batches by size only, so a version lands exactly on each chunk boundary"
        )
