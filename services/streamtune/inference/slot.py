"""The served model slot: load and verify first, swap after, one reference assignment.

The loader is passed in, so the swap logic is tested with trivial loaders and no weights.
Loads are serialised by a lock; a request reads :attr:`ModelSlot.current` once and keeps that
object, so requests in flight finish on the version they started with while a new one loads,
and the old version is freed when the last of them lets go of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from streamtune.errors import ModelLoadError
from streamtune.inference.memory import PeakMemory
from streamtune.metrics import ServingMetrics

logger = logging.getLogger(__name__)

# A version that failed to load is retried after this long (the failure may be transient,
# e.g. a store on a network filesystem); versions themselves are immutable once published.
RETRY_FAILED_AFTER_S = 30.0


class Versioned(Protocol):
    version: int


M = TypeVar("M", bound=Versioned)


@dataclass(frozen=True)
class SwapRecord:
    """What the latest swap cost: time, and resident memory before it and at its peak."""

    version: int
    previous: int | None
    seconds: float
    memory_before_bytes: int
    memory_peak_bytes: int

    @property
    def memory_increase_bytes(self) -> int:
        return max(0, self.memory_peak_bytes - self.memory_before_bytes)


class ModelSlot(Generic[M]):
    """Holds the served model and replaces it only with a fully loaded one."""

    def __init__(self, loader: Callable[[int], M], metrics: ServingMetrics) -> None:
        self._loader = loader
        self._metrics = metrics
        self._current: M | None = None
        self._lock = threading.Lock()
        self._failed_at: dict[int, float] = {}
        self.last_swap: SwapRecord | None = None

    @property
    def current(self) -> M | None:
        return self._current

    def ensure(self, version: int) -> bool:
        """Serve ``version``, loading it unless it is served already; True if swapped.

        A failed load is logged and counted, and the current version keeps serving; the same
        version is not tried again for :data:`RETRY_FAILED_AFTER_S`.
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
            try:
                self._load_and_swap(version)
            except ModelLoadError:
                return False
        return True

    def swap_to(self, version: int) -> M:
        """Serve ``version`` now (an operator's request): unlike :meth:`ensure`, a version that
        failed recently is tried again, and a failure raises :class:`ModelLoadError` (the current
        version keeps serving)."""
        with self._lock:
            current = self._current
            if current is not None and current.version == version:
                return current
            return self._load_and_swap(version)

    def _load_and_swap(self, version: int) -> M:
        """Load, then swap; the caller holds the lock."""
        previous = self._current
        started = time.perf_counter()
        with PeakMemory() as memory:
            try:
                loaded = self._loader(version)
            except ModelLoadError as error:
                self._refuse(version, "invalid", error)
                raise
            except Exception as error:  # any load failure must keep the old model serving
                self._refuse(version, "error", error)
                raise ModelLoadError(f"version {version} could not be loaded: {error}") from error
            self._current = loaded  # the swap: one reference assignment
        self._failed_at.pop(version, None)
        elapsed = time.perf_counter() - started
        self.last_swap = SwapRecord(
            version, None if previous is None else previous.version, elapsed, memory.before, memory.peak
        )
        self._metrics.model_swaps.inc()
        self._metrics.model_swap_seconds.observe(elapsed)
        self._metrics.model_swap_peak_memory_bytes.set(memory.peak)
        self._metrics.model_swap_memory_increase_bytes.set(memory.increase)
        self._metrics.serving_model_version.set(version)
        if previous is None or version > previous.version:
            self._observe_freshness(loaded)
        logger.info(
            "now serving version %d (was %s), swap took %.3f s, resident memory %.0f MiB (+%.1f MiB at peak)",
            version,
            "none" if previous is None else previous.version,
            elapsed,
            memory.before / 2**20,
            memory.increase / 2**20,
        )
        return loaded

    def _observe_freshness(self, loaded: M) -> None:
        """Production-to-served time of the events this version first trained on.

        The manifest bounds them: ``produced_oldest_ms`` (the oldest such event, the stalest) and
        ``produced_watermark_ms`` (the newest). Both ends are observed, so the histogram's tails
        are exact and its middle is an envelope; per-event times are not kept in a version.
        """
        manifest = getattr(loaded, "manifest", None) or {}
        now_ms = time.time() * 1000
        for key in ("produced_oldest_ms", "produced_watermark_ms"):
            produced_ms = manifest.get(key)
            if isinstance(produced_ms, int) and 0 < produced_ms <= now_ms:
                self._metrics.freshness_seconds.observe((now_ms - produced_ms) / 1000)

    def _refuse(self, version: int, reason: str, error: BaseException) -> None:
        self._failed_at[version] = time.monotonic()
        self._metrics.model_load_failures.labels(reason=reason).inc()
        serving = self._current.version if self._current is not None else None
        logger.error("refused version %d (still serving %s): %s", version, serving, error)
