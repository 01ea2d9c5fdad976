"""How an evaluation cuts its stream: warm-up, lock-step chunks, periodic retraining points.

Pure arithmetic, no I/O. The driver (:mod:`streamtune.evaluation.pipeline_driver`) feeds the
trainers whole chunks and waits until a version covering each chunk is served, so every boundary
a version must land on is a multiple of the chunk, and every chunk a multiple of the training
batch: the trainer then cuts batches by size alone and publishes exactly at chunk boundaries.
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

    Examples
    --------
    >>> plan = RunPlan(n_events=1000, warmup=128, chunk=64, periodic_every=256)
    >>> plan.chunks()[:2], plan.chunks()[-1]
    ([(128, 192), (192, 256)], (960, 1000))
    >>> plan.retrain_points()
    [384, 640, 896]
    """

    n_events: int
    warmup: int
    chunk: int
    periodic_every: int

    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every scored chunk; only the last one may be short."""
        return [
            (start, min(start + self.chunk, self.n_events)) for start in range(self.warmup, self.n_events, self.chunk)
        ]

    def retrain_points(self) -> list[int]:
        """Positions after which the periodic contender retrains (events remain to be scored)."""
        return list(range(self.warmup + self.periodic_every, self.n_events, self.periodic_every))

    @property
    def scored(self) -> int:
        return self.n_events - self.warmup


def plan_run(
    n_events: int,
    *,
    batch_size: int,
    chunk_size: int,
    warmup_share: float = 0.1,
    periodic_every: int | None = None,
) -> RunPlan:
    """Round the requested shares to the boundaries the lock-step protocol needs.

    The warm-up is ``warmup_share`` of the slice rounded down to whole chunks (at least one);
    ``periodic_every`` defaults to a quarter of the scored events, and is rounded up to whole
    chunks.

    Raises
    ------
    EvaluationError
        If the chunk is not a multiple of the batch, or the slice leaves nothing to score.

    Examples
    --------
    >>> plan_run(20_000, batch_size=32, chunk_size=256)
    RunPlan(n_events=20000, warmup=1792, chunk=256, periodic_every=4608)
    """
    if batch_size < 1 or chunk_size < batch_size or chunk_size % batch_size:
        raise EvaluationError(
            f"the chunk size ({chunk_size}) must be a positive multiple of the batch size ({batch_size}): "
            "the trainers cut batches by size only, so a version lands exactly on each chunk boundary"
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
    return RunPlan(n_events=n_events, warmup=warmup, chunk=chunk_size, periodic_every=every)
