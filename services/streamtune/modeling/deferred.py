"""A model family's steps as results that may come later.

A family in a model process (:mod:`streamtune.modeling.model_process`) offers ``train_later``
and ``score_later``: the call is sent and the trainer goes on, the result is read when it is
needed. Any other family runs the step now and its result is :class:`Ready` at once; the
trainer treats both alike (:mod:`streamtune.trainer.step_records`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Generic, NamedTuple, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from streamtune.ingest.training_batch import TrainingBatch
    from streamtune.modeling.family import ModelFamily, StepResult

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Deferred(Protocol[T_co]):
    @property
    def ready(self) -> bool:
        """Whether :meth:`result` would return without waiting."""
        ...

    def result(self) -> T_co:
        """The value, waiting for it if need be (raises what the call raised)."""
        ...


class Ready(Generic[T]):
    """A result that is already there."""

    ready = True

    def __init__(self, value: T) -> None:
        self._value = value

    def result(self) -> T:
        return self._value


class TimedStep(NamedTuple):
    result: StepResult
    seconds: float  # the step's own time, where it ran


def timed_train(family: ModelFamily, batch: TrainingBatch) -> TimedStep:
    started = time.perf_counter()
    result = family.train(batch)
    return TimedStep(result, time.perf_counter() - started)


def train_later(family: ModelFamily, batch: TrainingBatch) -> Deferred[TimedStep]:
    """One training step of ``family`` on ``batch``: sent, where the family can defer it, else run now."""
    later = getattr(family, "train_later", None)
    return later(batch) if later is not None else Ready(timed_train(family, batch))


def score_later(family: ModelFamily, batch: TrainingBatch) -> Deferred[np.ndarray]:
    """``family.score(batch)``: sent, where the family can defer it, else run now."""
    later = getattr(family, "score_later", None)
    return later(batch) if later is not None else Ready(family.score(batch))
