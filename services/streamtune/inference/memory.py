"""Resident memory of this process, sampled while a swap runs.

``ru_maxrss`` only ever grows, so once the first model is loaded it can no longer show the peak
of a later swap; sampling ``/proc/self/statm`` in a thread during the swap can.
"""

from __future__ import annotations

import os
import resource
import threading
from types import TracebackType

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """Current resident set size; the lifetime peak where ``/proc`` is unavailable."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class PeakMemory:
    """Context manager sampling resident memory every ``interval_s`` while its block runs.

    After the block, ``before`` is the resident size on entry and ``peak`` the largest sample.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self._interval_s = interval_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.before = 0
        self.peak = 0

    @property
    def increase(self) -> int:
        return max(0, self.peak - self.before)

    def _sample(self) -> None:
        while not self._done.wait(self._interval_s):
            self.peak = max(self.peak, resident_bytes())

    def __enter__(self) -> PeakMemory:
        self.before = self.peak = resident_bytes()
        self._thread = threading.Thread(target=self._sample, name="streamtune-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, resident_bytes())
