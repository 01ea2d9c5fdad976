"""The torch backend: the version's module as loaded, optionally int8-quantized (CPU) or
compiled (CUDA).

On CPU a batch runs in fp32 under ``torch.inference_mode``. On CUDA it runs in bf16 autocast
(where supported) on the backend's own stream; reading the probabilities back synchronizes that
stream, so exactly one batch is in flight per stream and the batcher's next batch is formed while
nothing else is queued on the device. ``torch.compile`` (dynamic shapes: batches are padded to
their own length) is tried on CUDA, and a graph that fails on its first batch falls back to eager.
"""

from __future__ import annotations

import logging

import torch

from streamtune.errors import ConfigurationError
from streamtune.inference.backends.base import Features
from streamtune.modeling.device import autocast

logger = logging.getLogger(__name__)


class TorchBackend:
    """Runs ``module`` (a sequence classifier with one logit) on ``device``."""

    def __init__(self, module: torch.nn.Module, device: torch.device, name: str = "torch", compile: bool = False):
        self.name = name
        self._module = module
        self._device = device
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._compiled = torch.compile(module, dynamic=True) if compile else None

    @property
    def module(self) -> torch.nn.Module:
        """The module that runs the forward pass (on CPU fp32, with oneDNN linears by default)."""
        return self._module

    @torch.inference_mode()
    def probabilities(self, features: Features) -> list[float]:
        if self._stream is None:
            return torch.sigmoid(self._logits(features).float()).tolist()
        with torch.cuda.stream(self._stream):
            inputs = {
                name: tensor.pin_memory().to(self._device, non_blocking=True) for name, tensor in features.items()
            }
            with autocast(self._device):
                logits = self._logits(inputs)
            probabilities = torch.sigmoid(logits.float()).cpu()  # waits for this stream only
        return probabilities.tolist()

    def _logits(self, inputs: Features) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(**inputs).logits.squeeze(-1)
            except Exception:  # an unsupported graph: serve eagerly rather than not at all
                logger.exception("torch.compile failed on %s; serving this version eagerly", self._device)
                self._compiled = None
        return self._module(**inputs).logits.squeeze(-1)


def quantized_int8(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A copy of ``module`` whose linear layers run with int8 weights, activations quantized
    per batch (dynamic quantization); the embeddings and layer norms stay fp32. CPU only."""
    if device.type != "cpu":
        raise ConfigurationError("STREAMTUNE_SERVE_QUANTIZE=int8 runs on CPU only; use bf16 on CUDA")
    return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
