"""Resident memory of this process, sampled while a swap runs.

``ru_maxrss`` only ever grows, so once the first model is loaded it can no longer show the peak
of a later swap; sampling ``/proc/self/statm`` in a thread during the swap can.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from types import TracebackType

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """Current resident set size; the lifetime peak where ``/proc`` is unavailable."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class _Sampler:
    """One thread for the process that samples resident memory every ``interval_s`` while at
    least one :class:`PeakMemory` block is open, and sleeps otherwise: a server swaps versions
    several times a second, and a thread started per swap cost more than the swap's sampling."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._open: set[PeakMemory] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, block: PeakMemory) -> None:
        with self._lock:
            self._open.add(block)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="streamtune-rss", daemon=True)
                self._thread.start()
            self._wake.set()

    def unwatch(self, block: PeakMemory) -> None:
        with self._lock:
            self._open.discard(block)
            if not self._open:
                self._wake.clear()

    def _run(self) -> None:
        while self._wake.wait():
            time.sleep(self._interval_s)
            resident = resident_bytes()
            with self._lock:
                for block in self._open:
                    block.peak = max(block.peak, resident)

    def forget(self) -> None:
        """In a forked child: the parent's thread and open blocks do not exist there."""
        self._lock, self._open, self._wake, self._thread = threading.Lock(), set(), threading.Event(), None


_SAMPLER = _Sampler(interval_s=0.005)
os.register_at_fork(after_in_child=_SAMPLER.forget)


class PeakMemory:
    """Context manager sampling resident memory every few milliseconds while its block runs.

    After the block, ``before`` is the resident size on entry and ``peak`` the largest sample.
    """

    def __init__(self) -> None:
        self.before = 0
        self.peak = 0

    @property
    def increase(self) -> int:
        return max(0, self.peak - self.before)

    def __enter__(self) -> PeakMemory:
        self.before = self.peak = resident_bytes()
        _SAMPLER.watch(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        _SAMPLER.unwatch(self)
        self.peak = max(self.peak, resident_bytes())
