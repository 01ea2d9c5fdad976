"""The ONNX Runtime backend: a version exported to ONNX when it loads (never on the request
path), optionally with int8 weights (ONNX Runtime's dynamic quantization).

The exported graph is the served module itself, so LoRA adapters are already merged into its
weights (:mod:`streamtune.modeling.overlay`); it ends in the sigmoid, so the runtime returns
probabilities. Batch and sequence axes are dynamic: each length group is padded to its own
longest row, as for torch. onnxruntime is the optional ``onnx`` extra.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from streamtune.errors import ConfigurationError
from streamtune.inference.backends.base import Features

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "probabilities"
OPSET = 17


class _Probabilities(torch.nn.Module):
    """The classifier with its sigmoid, taking the inputs by position (as the exporter passes them)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        logits = self.module(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        return torch.sigmoid(logits.squeeze(-1))


def export_onnx(module: torch.nn.Module, example: Features) -> bytes:
    """``module`` (on CPU, fp32) as an ONNX model with dynamic batch and sequence axes."""
    missing = [name for name in INPUT_NAMES if name not in example]
    if missing:
        raise ValueError(f"the ONNX backend needs model inputs {missing}")
    arguments = tuple(example[name].cpu() for name in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow it froze
        torch.onnx.export(
            _Probabilities(module).eval(),
            arguments,
            buffer,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
        )
    return buffer.getvalue()


def quantize_onnx_int8(model: bytes) -> bytes:
    """``model`` with int8 weights for its matrix multiplications (dynamic quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="streamtune-onnx-") as directory:
        source, target = Path(directory) / "model.onnx", Path(directory) / "model-int8.onnx"
        source.write_bytes(model)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


class OnnxBackend:
    """Runs an exported model with ONNX Runtime's CPU provider on ``threads`` threads."""

    def __init__(self, model: bytes, threads: int, name: str = "onnx") -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigurationError(
                "STREAMTUNE_SERVE_BACKEND=onnx needs onnxruntime: pip install 'streamtune[onnx]'"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No spinning between batches: on shared cores a spinning thread takes the event loop's time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.name = name
        self._session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._inputs = [node.name for node in self._session.get_inputs()]

    def probabilities(self, features: Features) -> list[float]:
        feed = {name: np.ascontiguousarray(features[name].numpy(), dtype=np.int64) for name in self._inputs}
        (probabilities,) = self._session.run([OUTPUT_NAME], feed)
        return probabilities.astype(np.float64).tolist()
