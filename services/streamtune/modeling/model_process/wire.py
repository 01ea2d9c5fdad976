"""The channel between the trainer and its model process: pickled calls over a socket pair.

The child is started as ``python -m streamtune.modeling.model_process.host FD`` (not through
:mod:`multiprocessing`, whose spawn would re-run the parent's ``__main__``: the ``streamtune``
command itself). It dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and end of file on its
socket everywhere), so a trainer killed by SIGKILL leaves no model process behind.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1


def send(connection: Connection, message: Any) -> None:
    # Plain pickle: torch registers shared-memory reductions for multiprocessing's own pickler,
    # which need a resource-sharing thread this channel does not have.
    connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


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
