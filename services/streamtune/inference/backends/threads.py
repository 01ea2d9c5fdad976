"""How the cores this process may actually use are split between forward passes: how many
batcher workers run forwards side by side, and how many threads each forward gets.

On two shared cores, one forward with two torch threads was measured at 6 requests/s and 87 CPU
ms/request against 25 requests/s and 11.5 ms with one thread (``benchmarks/serving_profile.py``,
load average ~7): every parallel region waits at its barrier for a thread the scheduler has
descheduled, spinning meanwhile. So on CPU two workers run single-threaded forwards side by
side on two cores (no barrier between them), and on larger machines each of the two gets an
equal share of the cores less one, which is left to uvicorn's event loop (HTTP, JSON, the
hand-offs). On CUDA one worker feeds the device: one batch in flight on its stream.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ForwardPlan:
    """Batcher workers running forwards side by side, and threads per forward."""

    workers: int
    threads: int


def forward_plan(
    threads: int | None = None,
    workers: int | None = None,
    cuda: bool = False,
    cores: int | None = None,
    python_bound: bool = False,
) -> ForwardPlan:
    """The split of ``cores`` (default: :func:`usable_cores`); ``threads`` / ``workers`` as
    configured win over the defaults. A ``python_bound`` model (the hybrid family: row lookups
    and a small MLP, mostly Python) gets one worker: a second would only contend with the event
    loop for the GIL (measured 878 req/s with one worker against 665 with two, same machine).

    >>> forward_plan(cores=1), forward_plan(cores=2)
    (ForwardPlan(workers=1, threads=1), ForwardPlan(workers=2, threads=1))
    >>> forward_plan(cores=8), forward_plan(cores=8, cuda=True)
    (ForwardPlan(workers=2, threads=3), ForwardPlan(workers=1, threads=7))
    >>> forward_plan(threads=2, cores=2)  # a configured thread count keeps one worker unless told
    ForwardPlan(workers=1, threads=2)
    >>> forward_plan(cores=2, python_bound=True)
    ForwardPlan(workers=1, threads=1)
    """
    cores = usable_cores() if cores is None else cores
    if workers is None:
        workers = 1 if cuda or python_bound or threads is not None or cores < 2 else 2
    if threads is None:
        threads = max(1, (cores - 1) // workers) if cores > 2 else 1
    return ForwardPlan(workers, threads)


def configure_threads(plan: ForwardPlan) -> ForwardPlan:
    """Size torch's thread pools for ``plan`` (once, at start-up)."""
    torch.set_num_threads(plan.threads)
    # Forwards run whole on their worker: no inter-op parallelism to use. Raises if inter-op
    # work already ran in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    logger.info(
        "%d worker(s) run forward passes, %d thread(s) each, on %d usable core(s)",
        plan.workers,
        plan.threads,
        usable_cores(),
    )
    return plan
