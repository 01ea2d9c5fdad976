"""The model process: builds the model family and runs the trainer's calls on it, in order.

Run by :class:`~streamtune.modeling.model_process.proxy.ProcessFamily` as
``python -m streamtune.modeling.model_process.host FD``. The first call carries the settings;
every call gets one reply, ``("ok", value)`` or ``("error", exception)``, in the order the
calls came. Snapshots stay here, known to the trainer by a number; a request also lists the
numbers the trainer no longer holds, which are dropped before it runs.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

from streamtune.modeling.deferred import TimedStep, timed_train
from streamtune.modeling.model_process.wire import child_connection, receive, send


class FamilyHost:
    """The family, the snapshots the trainer holds, and the scoring block it is inside."""

    def __init__(self, settings: Any) -> None:
        import torch

        from streamtune.metrics import TrainerMetrics
        from streamtune.modeling import device as devices
        from streamtune.modeling.family import build_family

        torch.manual_seed(settings.seed)  # as the trainer seeds before building an in-process family
        device = devices.select_device(settings.device)
        # The trainer's metrics are served by the trainer; what the family measures is counted there.
        self.family = build_family(settings.model_copy(update={"model_process": "off"}), device, TrainerMetrics())
        self._snapshots: dict[int, object] = {}
        self._next_handle = 0
        self._scoring: list[contextlib.ExitStack] = []

    def describe(self) -> dict[str, Any]:
        family = self.family
        return {
            "kind": family.kind,
            "gate_allows_noise": family.gate_allows_noise,
            "writes_deltas": family.writes_deltas,
            "encodes": family.batch_encoder() is not None,
        }

    def drop(self, handles: list[int]) -> None:
        for handle in handles:
            self._snapshots.pop(handle, None)

    # --- the calls -------------------------------------------------------------------------
    def train(self, batch: Any) -> TimedStep:
        return timed_train(self.family, batch)

    def score(self, batch: Any) -> np.ndarray:
        return self.family.score(batch)

    def snapshot(self) -> int:
        self._next_handle += 1
        self._snapshots[self._next_handle] = self.family.snapshot()
        return self._next_handle

    def restore(self, handle: int) -> int:
        return self.family.restore(self._snapshots[handle])

    def export(self, directory: Path, handle: int, parent: Path | None) -> dict[str, Any]:
        return self.family.export(directory, self._snapshots[handle], parent=parent)

    def scoring_enter(self, handle: int, current: int) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(self.family.scoring_as(self._snapshots[handle], self._snapshots[current]))
        self._scoring.append(stack)

    def scoring_exit(self) -> None:
        self._scoring.pop().close()

    def load(self, directory: Path, manifest: Any) -> None:
        self.family.load(directory, manifest)

    def trainer_state(self) -> dict[str, np.ndarray]:
        return self.family.trainer_state()

    def load_trainer_state(self, state: dict[str, np.ndarray]) -> None:
        self.family.load_trainer_state(state)

    def forget(self, user_tags: np.ndarray) -> int:
        return self.family.forget(user_tags)

    def on_drift(self) -> None:
        self.family.on_drift()

    def holdout_window(self, capacity: int) -> Any:
        return self.family.holdout_window(capacity)

    def warm_texts(self, texts: list[str]) -> None:
        self.family.warm_texts(texts)


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def serve(fd: int) -> int:
    connection = child_connection(fd)
    # The trainer decides when to stop (a signal to the process group reaches us too) and
    # closes the channel; should it die instead, the kernel kills us with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    host: FamilyHost | None = None
    while True:
        try:
            method, args, dropped = receive(connection)
        except EOFError:  # the trainer closed the channel or exited
            return 0
        if method == "close":  # the trainer does not wait for a reply
            return 0
        try:
            if host is None:  # the first call: ("start", (settings,))
                from streamtune.logs import configure_logging

                settings = args[0]
                configure_logging(settings.log_level, settings.log_format)
                host = FamilyHost(settings)
                value: Any = host.describe()
            else:
                host.drop(dropped)
                value = getattr(host, method)(*args)
            reply: tuple[str, Any] = ("ok", value)
        except BaseException as error:  # the trainer raises it where it reads the result
            reply = ("error", _portable(error))
        send(connection, reply)


if __name__ == "__main__":
    raise SystemExit(serve(int(sys.argv[1])))
