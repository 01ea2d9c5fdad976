"""Device and precision decisions, made once at start-up and explained in the log."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from streamtune.errors import ConfigurationError

logger = logging.getLogger(__name__)


def select_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a configuration error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("STREAMTUNE_DEVICE=cuda but no CUDA device is visible")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def uses_bf16(device: torch.device) -> bool:
    """bf16 autocast on GPUs that support it (Ampere and newer); CPUs stay in fp32, where bf16
    matmuls are slower than fp32 on most server parts without AMX."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    if uses_bf16(device):
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda ({name}, {'bf16 autocast' if uses_bf16(device) else 'fp32'})"
    return f"cpu ({torch.get_num_threads()} threads, fp32)"
