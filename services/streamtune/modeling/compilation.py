"""Optional ``torch.compile`` of the model (``STREAMTUNE_COMPILE``), decided once at start-up.

On CUDA the compiled model runs under CUDA graphs (``mode="reduce-overhead"``): one recorded
graph is replayed per step, removing the per-kernel launch cost that dominates small encoders
at small batch sizes. A graph replays one exact shape, so training batches are padded to a few
static shapes (:class:`streamtune.modeling.shapes.ShapeBuckets`); the model is compiled with
dynamic shapes, one graph then serves every bucket and a CUDA graph is recorded per bucket.

On CPU, inductor generates and compiles C++: it needs a C++ compiler, and the first step of
each shape takes from seconds (a tiny model) to minutes (MiniLM on two cores) to compile. Both
are checked or said at start-up rather than discovered at the first step.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil

import torch

from streamtune.errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_BACKEND = "inductor"
_CXX_CANDIDATES = ("g++", "c++", "clang++")


def toolchain_problem(device: torch.device, backend: str = DEFAULT_BACKEND) -> str | None:
    """Why ``backend`` cannot compile for ``device`` here; None when it can."""
    if backend != DEFAULT_BACKEND:
        return None  # the debugging backends (eager, aot_eager) generate no code
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "STREAMTUNE_COMPILE=true on CUDA needs triton (pip install triton), or unset STREAMTUNE_COMPILE"
        return None
    configured = os.environ.get("CXX")
    if (configured and shutil.which(configured)) or any(shutil.which(name) for name in _CXX_CANDIDATES):
        return None
    return (
        "STREAMTUNE_COMPILE=true on CPU needs a C++ compiler (torch.compile generates C++): install g++ "
        "(e.g. apt-get install g++) or unset STREAMTUNE_COMPILE"
    )


def compile_model(model: torch.nn.Module, device: torch.device, backend: str = DEFAULT_BACKEND) -> torch.nn.Module:
    """``model`` compiled for ``device``; raises :class:`ConfigurationError` if it cannot be.

    The result shares its parameters with ``model`` (state dicts, ``train()``/``eval()`` and
    optimisers keep working on ``model``).
    """
    problem = toolchain_problem(device, backend)
    if problem is not None:
        raise ConfigurationError(problem)
    cuda_graphs = device.type == "cuda" and backend == DEFAULT_BACKEND
    logger.info(
        "compiling the model with torch.compile (%s backend%s); the first step of each batch shape compiles",
        backend,
        ", CUDA graphs" if cuda_graphs else "",
    )
    return torch.compile(model, backend=backend, mode="reduce-overhead" if cuda_graphs else None)
