"""The channel between the trainer and its model process: pickled calls over a socket pair.

The child is started as ``python -m streamtune.modeling.model_process.host FD`` (not through
:mod:`multiprocessing`, whose spawn would re-run the parent's ``__main__``: the ``streamtune``
command itself). It dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and end of file on its
socket everywhere), so a trainer killed by SIGKILL leaves no model process behind.
"""

from __future__ import annotations

import copyreg
import ctypes
import io
import os
import pickle
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

import torch

_PR_SET_PDEATHSIG = 1


def _tensor_as_array(tensor: torch.Tensor) -> tuple[Any, ...]:
    """A plain CPU tensor travels as a numpy array: torch's own reduction costs ~0.1 ms a tensor
    each way, as much as the rest of a batch of 256 rows. Any other tensor (bf16, sparse, one
    that needs its gradient) keeps torch's reduction."""
    if tensor.device.type == "cpu" and tensor.layout == torch.strided and not tensor.requires_grad:
        try:
            return torch.from_numpy, (tensor.numpy(),)
        except (RuntimeError, TypeError):  # a dtype numpy lacks, or a lazy conjugate or negation
            pass
    return tensor.__reduce_ex__(pickle.HIGHEST_PROTOCOL)


class _WirePickler(pickle.Pickler):
    # Not multiprocessing's pickler: torch registers shared-memory reductions there, which need
    # a resource-sharing thread this channel does not have.
    dispatch_table = copyreg.dispatch_table | {torch.Tensor: _tensor_as_array}


def send(connection: Connection, message: Any) -> None:
    buffer = io.BytesIO()
    _WirePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    connection.send_bytes(buffer.getbuffer())


def receive(connection: Connection) -> Any:
    return pickle.loads(connection.recv_bytes())


def start_child(module: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``python -m module FD`` with one end of a socket pair; returns it and our end."""
    ours, theirs = socket.socketpair()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno())], pass_fds=(theirs.fileno(),), close_fds=True
        )
    finally:
        theirs.close()
    return child, Connection(ours.detach())


def child_connection(fd: int) -> Connection:
    """The child's end of the channel; also asks the kernel to kill the child with its parent."""
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
    return Connection(fd)
