"""The trainer's side of the model process: a :class:`~streamtune.modeling.family.ModelFamily`
whose calls run in the child (:mod:`~streamtune.modeling.model_process.host`).

Every call is sent at once and answered in order. :meth:`ProcessFamily.train_later` and
:meth:`ProcessFamily.score_later` return a :class:`Pending` result and do not wait; every other
call waits for its reply (and so for every step sent before it). At most ``MAX_IN_FLIGHT``
calls are unanswered: the trainer then waits for the oldest, so it never runs more than a few
batches ahead of the model, and replies never fill the socket while the trainer is sending.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import weakref
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from streamtune.errors import ConfigurationError, ModelProcessError
from streamtune.modeling.deferred import TimedStep
from streamtune.modeling.family import StepResult
from streamtune.modeling.model_process.wire import receive, send, start_child

if TYPE_CHECKING:
    from streamtune.checkpoints import Manifest
    from streamtune.config import Settings
    from streamtune.ingest.training_batch import TrainingBatch
    from streamtune.metrics import TrainerMetrics
    from streamtune.trainer.gate.holdout import HoldoutWindow

T = TypeVar("T")
MAX_IN_FLIGHT = 8
_HOST = "streamtune.modeling.model_process.host"
_CLOSE_TIMEOUT_S = 10.0
_EXIT_WAIT_S = 2.0


def uses_model_process(settings: Settings) -> bool:
    """``STREAMTUNE_MODEL_PROCESS``: ``on``, ``off``, or ``auto`` — on for the hybrid family
    where the trainer has two cores or more (its step is mostly Python: a core of its own
    doubles what the trainer gets through; on one core there is nothing to overlap)."""
    if settings.model_process != "auto":
        return settings.model_process == "on"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return settings.model_kind == "hybrid" and cores >= 2


class _Channel:
    """Calls in order, replies in order, and the snapshots to drop with the next call."""

    def __init__(self, child: subprocess.Popen[bytes], connection: Connection) -> None:
        self.child = child
        self.connection = connection
        self.dropped: collections.deque[int] = collections.deque()  # appended by finalizers, any thread
        self._sent = 0
        self._read = 0
        self._replies: dict[int, tuple[str, Any]] = {}
        self._unawaited: set[int] = set()

    def send(self, method: str, *args: Any) -> int:
        while self._sent - self._read >= MAX_IN_FLIGHT:
            self._read_one()
        dropped = [self.dropped.popleft() for _ in range(len(self.dropped))]
        self._call(lambda: send(self.connection, (method, args, dropped)))
        self._sent += 1
        return self._sent - 1

    def call(self, method: str, *args: Any) -> Any:
        return self.result(self.send(method, *args))

    def post(self, method: str, *args: Any) -> None:
        """Send a call whose reply nobody waits for (an error in it is raised at a later read)."""
        self._unawaited.add(self.send(method, *args))

    def result(self, call: int) -> Any:
        while call not in self._replies:
            self._read_one()
        status, value = self._replies.pop(call)
        if status == "error":
            raise value
        return value

    def arrived(self, call: int) -> bool:
        while call not in self._replies and self._call(lambda: self.connection.poll(0)):
            self._read_one()
        return call in self._replies

    def _read_one(self) -> None:
        reply = self._call(lambda: receive(self.connection))
        call, self._read = self._read, self._read + 1
        if call not in self._unawaited:
            self._replies[call] = reply
            return
        self._unawaited.discard(call)
        if reply[0] == "error":
            raise reply[1]

    def _call(self, operation: Any) -> Any:
        try:
            return operation()
        except (EOFError, OSError) as error:
            raise ModelProcessError(f"the model process is gone ({self._exit()}): {type(error).__name__}") from None

    def _exit(self) -> str:
        try:
            code = self.child.wait(_EXIT_WAIT_S)  # a killed child may not be reaped yet
        except subprocess.TimeoutExpired:
            return "its channel closed, the process still running"
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


class Pending(Generic[T]):
    """A call's result, read from the channel when asked for."""

    def __init__(self, channel: _Channel, call: int) -> None:
        self._channel = channel
        self._call = call

    @property
    def ready(self) -> bool:
        return self._channel.arrived(self._call)

    def result(self) -> T:
        return self._channel.result(self._call)  # type: ignore[no-any-return]


class RemoteSnapshot:
    """A snapshot held by the model process; it is dropped there once nothing here holds this."""

    def __init__(self, channel: _Channel, handle: int) -> None:
        self.handle = handle
        weakref.finalize(self, channel.dropped.append, handle)


def _shut_down(child: subprocess.Popen[bytes], connection: Connection) -> None:
    with contextlib.suppress(Exception):
        send(connection, ("close", (), []))
    connection.close()
    try:
        child.wait(_CLOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class ProcessFamily:
    """The family ``STREAMTUNE_MODEL_KIND`` names, in a model process of its own."""

    def __init__(self, settings: Settings, metrics: TrainerMetrics) -> None:
        child, connection = start_child(_HOST)
        self._channel = _Channel(child, connection)
        self._closer = weakref.finalize(self, _shut_down, child, connection)
        self._metrics = metrics
        described = self._channel.call("start", settings)
        if described["encodes"]:
            self.close()
            raise ConfigurationError(
                f"STREAMTUNE_MODEL_PROCESS=on: the {described['kind']} family prepares its inputs on the ingest "
                "thread, which a model process cannot share; set STREAMTUNE_MODEL_PROCESS=off or auto"
            )
        self.kind: str = described["kind"]
        self.gate_allows_noise: bool = described["gate_allows_noise"]
        self.writes_deltas: bool = described["writes_deltas"]

    def close(self) -> None:
        """Stop the model process (also done when this object is collected, or at exit)."""
        self._closer()

    # --- steps -----------------------------------------------------------------------------
    def batch_encoder(self) -> None:
        return None  # checked when the process started

    def train_later(self, batch: TrainingBatch) -> Pending[TimedStep]:
        self._metrics.train_batch_size.observe(len(batch))
        return Pending(self._channel, self._channel.send("train", batch))

    def score_later(self, batch: TrainingBatch) -> Pending[np.ndarray]:
        return Pending(self._channel, self._channel.send("score", batch))

    def train(self, batch: TrainingBatch) -> StepResult:
        return self.train_later(batch).result().result

    def score(self, batch: TrainingBatch) -> np.ndarray:
        return self.score_later(batch).result()

    def on_drift(self) -> None:
        self._channel.post("on_drift")  # in order with the steps, without waiting for them

    def holdout_window(self, capacity: int) -> HoldoutWindow:
        return self._channel.call("holdout_window", capacity)  # type: ignore[no-any-return]

    def warm_texts(self, texts: list[str]) -> None:
        self._channel.call("warm_texts", texts)

    # --- versions and state ----------------------------------------------------------------
    def export(self, directory: Path, snapshot: RemoteSnapshot, *, parent: Path | None = None) -> dict[str, Any]:
        return self._channel.call("export", directory, snapshot.handle, parent)  # type: ignore[no-any-return]

    def load(self, directory: Path, manifest: Manifest) -> None:
        self._channel.call("load", directory, manifest)

    def trainer_state(self) -> dict[str, np.ndarray]:
        return self._channel.call("trainer_state")  # type: ignore[no-any-return]

    def load_trainer_state(self, state: dict[str, np.ndarray]) -> None:
        self._channel.call("load_trainer_state", state)

    def forget(self, user_tags: np.ndarray) -> int:
        return self._channel.call("forget", user_tags)  # type: ignore[no-any-return]

    def snapshot(self) -> RemoteSnapshot:
        return RemoteSnapshot(self._channel, self._channel.call("snapshot"))

    def restore(self, snapshot: RemoteSnapshot) -> int:
        return self._channel.call("restore", snapshot.handle)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def scoring_as(self, snapshot: RemoteSnapshot, current: RemoteSnapshot) -> Iterator[None]:
        self._channel.call("scoring_enter", snapshot.handle, current.handle)
        try:
            yield
        finally:
            self._channel.call("scoring_exit")
