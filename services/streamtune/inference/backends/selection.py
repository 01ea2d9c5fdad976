"""Choose the backend a loaded version serves on: the one the settings ask for if it matches
torch on the reference set, else torch (logged, counted).

Plain torch on CPU is a candidate too: its linear layers run on oneDNN with packed weights
(:mod:`streamtune.modeling.onednn`, ~2x faster than the stock fp32 path on CPUs where
MKL does not use AVX-512), checked against the stock module like any other backend.

Building a candidate (export to ONNX, quantization) runs in the loading thread, off the request
path; the old version keeps serving meanwhile. A version that fails the check or cannot be
exported keeps serving — on torch — so a backend problem never costs availability. Versions are
immutable, so the backends of the last few versions are kept: a swap back to one of them (a pin,
a rollback) reuses its export instead of redoing it.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence

import torch

from streamtune.errors import ConfigurationError
from streamtune.inference.backends.acceptance import REFERENCE_PAIRS, Agreement, compare, tolerance_for
from streamtune.inference.backends.base import Backend, BackendSpec, Features
from streamtune.inference.backends.torch_backend import TorchBackend, quantized_int8
from streamtune.metrics import ServingMetrics
from streamtune.modeling.onednn import PackedWeights, onednn_available, with_onednn_linears

logger = logging.getLogger(__name__)

# Backends kept for swaps back: the served version and the one before it.
KEEP_BUILT = 2

# Tokenizes and pads (texts, contexts) into length groups of model inputs, as serving does.
Encoder = Callable[[Sequence[str], Sequence[str | None]], list[Features]]


class BackendChooser:
    """Builds each loaded version's backend per ``spec`` (accepted within its tolerance);
    ``threads`` sizes ONNX Runtime's pool; ``onednn`` runs plain torch's linear layers on
    oneDNN on CPU (where this torch has it).

    A combination that cannot run on ``device`` is a :class:`ConfigurationError` here, at
    start-up, not a refusal of every version later.
    """

    def __init__(
        self,
        spec: BackendSpec,
        metrics: ServingMetrics,
        device: torch.device,
        *,
        threads: int | None = None,
        onednn: bool = True,
    ) -> None:
        self.spec = spec
        self.tolerance = tolerance_for(spec)
        self._metrics = metrics
        self._device = device
        self._threads = threads or torch.get_num_threads()
        self.onednn = onednn and device.type == "cpu" and onednn_available()
        self.packed = PackedWeights()  # shared by every version: base weights are packed once
        if not spec.is_plain_torch and device.type != "cpu":
            raise ConfigurationError(
                f"serving backend {spec.name} runs on CPU only; on {device.type} serve with torch (bf16)"
            )
        if spec.kind == "onnx":
            try:
                import onnxruntime  # noqa: F401  (fail at start-up, not at the first load)
            except ImportError:
                raise ConfigurationError(
                    "STREAMTUNE_SERVE_BACKEND=onnx needs onnxruntime: pip install 'streamtune[onnx]'"
                ) from None
        self.last_agreement: Agreement | None = None
        self.builds = 0  # candidates built (exported, quantized) and checked
        # version -> its accepted backend, or None when it was refused (it serves on torch)
        self._built: collections.OrderedDict[int, Backend | None] = collections.OrderedDict()

    def choose(self, version: int, module: torch.nn.Module, encode: Encoder) -> Backend:
        """The backend ``version`` serves on (plain torch when the candidate is refused)."""
        if self.spec.is_plain_torch and not self.onednn:
            return TorchBackend(module, self._device, compile=self._device.type == "cuda")
        reference = TorchBackend(module, self._device)
        if version in self._built:
            self._built.move_to_end(version)
            return self._built[version] or reference
        chosen = self._check(version, module, encode, reference)
        self._built[version] = None if chosen is reference else chosen
        while len(self._built) > KEEP_BUILT:
            self._built.popitem(last=False)
        return chosen

    def _check(self, version: int, module: torch.nn.Module, encode: Encoder, reference: Backend) -> Backend:
        """The candidate if it builds and matches ``reference``; else ``reference``, counted."""
        self.builds += 1
        started = time.perf_counter()
        batches = encode([text for text, _ in REFERENCE_PAIRS], [context for _, context in REFERENCE_PAIRS])
        try:
            candidate = self._build(module, batches[0])
            agreement = compare(candidate, reference, batches, self.tolerance)
        except Exception as error:  # an export or runtime failure: keep serving, on torch
            self._refuse(version, "error", f"could not be built: {error}")
            return reference
        self.last_agreement = agreement
        self._metrics.backend_score_difference.labels(agreement.backend).set(agreement.max_difference)
        if not agreement.accepted:
            self._refuse(
                version,
                "mismatch",
                f"scores differ from torch by up to {agreement.max_difference:.2e} "
                f"(tolerance {agreement.tolerance:.0e})",
            )
            return reference
        logger.info(
            "version %d serves on %s: built and checked in %.2f s, scores within %.2e of torch (tolerance %.0e)",
            version,
            candidate.name,
            time.perf_counter() - started,
            agreement.max_difference,
            agreement.tolerance,
        )
        return candidate

    def _build(self, module: torch.nn.Module, example: Features) -> Backend:
        if self.spec.is_plain_torch:  # fp32, linear layers on oneDNN
            return TorchBackend(with_onednn_linears(module, self.packed), self._device, name=self.spec.name)
        if self.spec.kind == "torch":  # int8: dynamic quantization of the linear layers
            return TorchBackend(quantized_int8(module, self._device), self._device, name=self.spec.name)
        from streamtune.inference.backends.onnx_backend import OnnxBackend, export_onnx, quantize_onnx_int8

        model = export_onnx(module, example)
        if self.spec.quantize == "int8":
            model = quantize_onnx_int8(model)
        return OnnxBackend(model, self._threads, name=self.spec.name)

    def _refuse(self, version: int, reason: str, detail: str) -> None:
        self._metrics.backend_rejections.labels(self.spec.name, reason).inc()
        logger.error("version %d: backend %s refused, serving on torch instead: %s", version, self.spec.name, detail)
