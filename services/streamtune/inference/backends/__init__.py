"""Forward-pass backends of a served version: torch (CPU fp32, CUDA bf16), ONNX Runtime, and
int8 dynamic quantization of either. A faster backend is used only after its scores matched
torch's on a reference set (:mod:`streamtune.inference.backends.acceptance`)."""

from streamtune.inference.backends.base import Backend, BackendSpec, Features

__all__ = ["Backend", "BackendSpec", "Features"]
