"""Freed heap memory goes back to the system when trimmed (glibc only)."""

from __future__ import annotations

import psutil
import pytest

from streamtune.memory_trim import start_periodic_trim, trim_now
from streamtune.testing.network import wait_for


def _rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _free_a_heap_full_behind_a_live_block() -> list[bytes]:
    """Fill ~200 MiB of heap in blocks under glibc's mmap threshold, then free all but every
    50th: free() cannot give back pages lying between live blocks, so they stay resident until
    trimmed. Returns the live blocks."""
    blocks = [b"x" * 100_000 for _ in range(2000)]
    keep = blocks[::50]
    del blocks
    return keep


def test_trimming_returns_freed_heap_to_the_system():
    if not trim_now():
        pytest.skip("no malloc_trim in this C library")
    keep = _free_a_heap_full_behind_a_live_block()
    held = _rss_mib()
    assert trim_now()
    assert _rss_mib() < held - 100, "trimming gave back less than half of the 200 MiB freed"
    assert keep


def test_the_periodic_trim_runs_by_itself():
    if not trim_now():
        pytest.skip("no malloc_trim in this C library")
    keep = _free_a_heap_full_behind_a_live_block()
    held = _rss_mib()
    assert start_periodic_trim(interval_s=0.05) is not None
    wait_for(lambda: _rss_mib() < held - 100, 10, what="the periodic trim to give memory back")
    assert keep
