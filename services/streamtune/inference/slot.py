"""The served model slot: load and verify first, swap after, one reference assignment.

The loader is passed in, so the swap logic is tested with trivial loaders and no weights.
Loads are serialised by a lock; a request reads :attr:`ModelSlot.current` once and keeps that
object, so requests in flight finish on the version they started with while a new one loads.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from streamtune.errors import ModelLoadError
from streamtune.metrics import ServingMetrics

logger = logging.getLogger(__name__)

# A version that failed to load is retried after this long (the failure may be transient,
# e.g. a store on a network filesystem); versions themselves are immutable once published.
RETRY_FAILED_AFTER_S = 30.0


class Versioned(Protocol):
    version: int


M = TypeVar("M", bound=Versioned)


class ModelSlot(Generic[M]):
    """Holds the served model and replaces it only with a fully loaded one."""

    def __init__(self, loader: Callable[[int], M], metrics: ServingMetrics) -> None:
        self._loader = loader
        self._metrics = metrics
        self._current: M | None = None
        self._lock = threading.Lock()
        self._failed_at: dict[int, float] = {}

    @property
    def current(self) -> M | None:
        return self._current

    def ensure(self, version: int) -> bool:
        """Serve ``version``, loading it unless it is served already; True if swapped.

        A failed load is logged and counted, and the current version keeps serving.
        """
        current = self._current
        if current is not None and current.version == version:
            return False
        with self._lock:
            current = self._current  # another caller may have done the work meanwhile
            if current is not None and current.version == version:
                return False
            failed_at = self._failed_at.get(version)
            if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_AFTER_S:
                return False
            started = time.perf_counter()
            try:
                loaded = self._loader(version)
            except ModelLoadError as error:
                self._refuse(version, "invalid", error)
                return False
            except Exception as error:  # noqa: BLE001 - any load failure must keep the old model serving
                self._refuse(version, "error", error)
                return False
            self._current = loaded  # the swap: one reference assignment
            self._failed_at.pop(version, None)
        elapsed = time.perf_counter() - started
        self._metrics.model_swaps.inc()
        self._metrics.model_swap_seconds.observe(elapsed)
        self._metrics.model_swap_peak_memory_bytes.set(_peak_rss_bytes())
        self._metrics.serving_model_version.set(version)
        logger.info(
            "now serving version %d (was %s), swap took %.3f s",
            version, "none" if current is None else current.version, elapsed,
        )
        return True

    def _refuse(self, version: int, reason: str, error: BaseException) -> None:
        self._failed_at[version] = time.monotonic()
        self._metrics.model_load_failures.labels(reason=reason).inc()
        serving = self._current.version if self._current is not None else None
        logger.error("refused version %d (still serving %s): %s", version, serving, error)


def _peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
