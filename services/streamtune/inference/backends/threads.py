"""How many threads the forward pass gets: the cores this process may actually use, less one
for the event loop when there are few.

On two shared cores, two torch threads per forward were measured at 6 requests/s and 87 CPU
ms/request against 25 requests/s and 11.5 ms with one thread (``benchmarks/serving_profile.py``,
load average ~7): every parallel region waits at its barrier for a thread the scheduler has
descheduled, spinning meanwhile. One core is left to uvicorn's event loop (HTTP, JSON, the
hand-offs), which would otherwise be descheduled behind the forward's threads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = _CGROUP_CPU_MAX) -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota
    (a container limited to 2 CPUs on a 64-core host has 2)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity mask is the limit
    return cores


def forward_threads(configured: int | None, cores: int | None = None) -> int:
    """``configured`` if set, else every usable core but one (at least one).

    >>> forward_threads(None, cores=2), forward_threads(None, cores=8), forward_threads(3, cores=8)
    (1, 7, 3)
    """
    if configured is not None:
        return configured
    cores = usable_cores() if cores is None else cores
    return max(1, cores - 1)


def configure_threads(configured: int | None) -> int:
    """Size torch's thread pools for serving (called once at start-up) and return the count."""
    threads = forward_threads(configured)
    torch.set_num_threads(threads)
    # One forward at a time: no inter-op parallelism to use. Raises if inter-op work already ran.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    logger.info("forward passes use %d thread(s) of %d usable core(s)", threads, usable_cores())
    return threads
