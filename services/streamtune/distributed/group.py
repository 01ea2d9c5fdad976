"""The process group of a data-parallel trainer, from the environment torchrun sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from streamtune.errors import ConfigurationError

# A collective waits this long for a peer. torchrun's agent tears a group down within seconds
# of a dead rank, so this bounds only a rank that hangs alive (e.g. a stuck broker call).
_COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the group: ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> RankInfo:
        """Read torchrun's variables; a process started without torchrun is rank 0 of 1.

        >>> RankInfo.from_environment({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"})
        RankInfo(rank=1, world_size=3, local_rank=1)
        >>> RankInfo.from_environment({})
        RankInfo(rank=0, world_size=1, local_rank=0)
        """
        env = os.environ if environ is None else environ
        info = cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
        if not 0 <= info.rank < info.world_size:
            raise ConfigurationError(f"RANK={info.rank} is outside WORLD_SIZE={info.world_size}")
        return info

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0 judges, publishes and announces for the group."""
        return self.rank == 0


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU ones.

    >>> backend_for(torch.device("cpu")), backend_for(torch.device("cuda", 1))
    ('gloo', 'nccl')
    """
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(setting: str, local_rank: int) -> str:
    """The device setting for a rank: each rank of a node takes its own GPU.

    >>> rank_device("cuda", 2), rank_device("cpu", 2), rank_device("cuda:0", 1)
    ('cuda:2', 'cpu', 'cuda:0')
    """
    return f"cuda:{local_rank}" if setting == "cuda" else setting


def join_group(info: RankInfo, device: torch.device) -> None:
    """Join the group torchrun rendezvoused (``MASTER_ADDR``/``MASTER_PORT``)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend_for(device),
        store=_attempt_store(info),
        rank=info.rank,
        world_size=info.world_size,
        timeout=_COLLECTIVE_TIMEOUT,
    )


def _attempt_store(info: RankInfo) -> dist.Store:
    """The rendezvous store, its keys under this restart's own prefix.

    torchrun's agent keeps one store across restarts of the group; the process group's keys
    (each rank's gloo address) would outlive a killed rank, and a restarted peer reading the
    dead rank's address before the new rank wrote its own fails to connect.
    """
    agent_hosts_it = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ.get("MASTER_ADDR", "127.0.0.1"),
        int(os.environ.get("MASTER_PORT", "29500")),
        info.world_size,
        is_master=info.leader and not agent_hosts_it,
        timeout=_COLLECTIVE_TIMEOUT,
    )
    return dist.PrefixStore(f"streamtune/attempt-{attempt_number()}", store)


def attempt_number(environ: dict[str, str] | None = None) -> int:
    """How many times torchrun has restarted the group (0 for its first start).

    >>> attempt_number({"TORCHELASTIC_RESTART_COUNT": "3"}), attempt_number({})
    (3, 0)
    """
    env = os.environ if environ is None else environ
    return int(env.get("TORCHELASTIC_RESTART_COUNT", 0))


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def from_leader(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
