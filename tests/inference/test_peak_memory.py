"""The swap's memory figure: a peak reached and released inside the block is still seen, by
every block open at the time, and the sampling thread is shared, not started per block."""

from __future__ import annotations

import threading
import time

import numpy as np

from streamtune.inference.memory import PeakMemory

MIB = 1 << 20


def _hold(megabytes: int, seconds: float) -> None:
    block = np.ones(megabytes * MIB // 8)  # written, so resident
    time.sleep(seconds)
    del block


def test_a_peak_released_inside_the_block_is_seen_by_every_open_block():
    with PeakMemory() as outer:
        with PeakMemory() as inner:
            _hold(200, 0.1)
        after_inner = inner.peak
    assert inner.increase > 150 * MIB and outer.increase > 150 * MIB
    assert inner.peak == after_inner  # a closed block is no longer sampled


def test_one_sampling_thread_serves_every_block():
    for _ in range(20):
        with PeakMemory():
            pass
    samplers = [thread for thread in threading.enumerate() if thread.name == "streamtune-rss"]
    assert len(samplers) == 1
