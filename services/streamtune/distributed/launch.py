"""Start a data-parallel trainer: ``streamtune train --nproc N`` on one node (through torchrun),
and one rank's life under torchrun (``torchrun … -m streamtune train``)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

from streamtune.config import Settings
from streamtune.distributed.group import RankInfo, leave_group
from streamtune.errors import ConfigurationError

logger = logging.getLogger(__name__)


def torchrun_command(nproc: int, max_restarts: int, train_args: list[str]) -> list[str]:
    """torchrun (``torch.distributed.run``) on this node with ``nproc`` ranks of ``streamtune train``.

    >>> torchrun_command(2, 3, ["--log-level", "debug"])[2:]  # doctest: +NORMALIZE_WHITESPACE
    ['torch.distributed.run', '--standalone', '--nproc-per-node=2', '--max-restarts=3',
     '-m', 'streamtune', 'train', '--log-level', 'debug']
    """
    if nproc < 1 or max_restarts < 0:
        raise ConfigurationError("--nproc must be at least 1 and --max-restarts at least 0")
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        "-m",
        "streamtune",
        "train",
        *train_args,
    ]


def exec_torchrun(nproc: int, max_restarts: int, train_args: list[str]) -> int:
    """Replace this process by torchrun (it forwards SIGTERM to the ranks and restarts the group)."""
    command = torchrun_command(nproc, max_restarts, train_args)
    logger.info("starting %d ranks: %s", nproc, " ".join(command[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # not reached


def rank_metrics_port(port: int, local_rank: int) -> int:
    """Each rank of a node exports its metrics on its own port (0 stays "any free port").

    >>> rank_metrics_port(9100, 1), rank_metrics_port(0, 1)
    (9101, 0)
    """
    return port + local_rank if port else 0


def train_rank(settings: Settings, info: RankInfo, stop: threading.Event, bootstrap: Path | None = None) -> int:
    """Run this process as rank ``info.rank`` of the group until ``stop`` (or a peer's) is set."""
    from prometheus_client import start_http_server

    from streamtune.distributed.trainer import DistributedTrainer

    if bootstrap is not None:
        raise ConfigurationError("--bootstrap runs with one rank: bootstrap first, then start the group")
    trainer = DistributedTrainer(settings, info)
    port = rank_metrics_port(settings.trainer_metrics_port, info.local_rank)
    start_http_server(port, addr=settings.http_host, registry=trainer.metrics.registry)
    try:
        trainer.setup()
        trainer.metrics.trainer_ready.set(1)
        trainer.run(stop)
        logger.info("rank %d of %d stopped", info.rank, info.world_size)
    finally:
        leave_group()
    return 0
