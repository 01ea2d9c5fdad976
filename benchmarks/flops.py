"""Training FLOPs of an encoder step and model FLOPs utilisation (MFU).

MFU is the ratio of the FLOPs the model needs per second at the observed throughput to the
accelerator's peak (Chowdhery et al., 2022, "PaLM: Scaling Language Modeling with Pathways",
appendix B). Counting, per token of a sequence of ``width`` positions, with ``N`` the weights of
the linear layers applied to every token and ``L`` layers of width ``d``:

- forward: ``2·N`` for the matmuls plus ``4·L·width·d`` for attention (``QKᵀ`` and ``AV``);
- backward, full fine-tuning: twice the forward (gradients of activations and of weights);
- backward, LoRA: the frozen weights need only activation gradients (``2·N``), attention still
  twice its forward; the adapters' own FLOPs are counted like any other linear layer.

Only attended tokens count (padding is waste, not work), so the figure is conservative. Linear
layers that see one vector per sequence (the pooler and the classifier) are left out of ``N``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, in TFLOP/s. Matched
# against torch.cuda.get_device_name() in this order (the first substring found wins).
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM5
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
)
_PER_SEQUENCE_LAYERS = ("pooler", "classifier", "score")


def bf16_peak_tflops(device_name: str) -> float | None:
    """The bf16 dense peak of a GPU named ``device_name``; None when unknown.

    >>> bf16_peak_tflops("NVIDIA H100 80GB HBM3")
    989.4
    >>> bf16_peak_tflops("NVIDIA L40S"), bf16_peak_tflops("NVIDIA L4")
    (362.0, 121.0)
    >>> bf16_peak_tflops("cpu") is None
    True
    """
    for marker, peak in BF16_PEAK_TFLOPS:
        if marker in device_name:
            return peak
    return None


@dataclass(frozen=True)
class EncoderShape:
    """What the FLOP count needs to know about a model."""

    token_linear_params: int  # N: weights of linear layers applied to every token
    layers: int
    hidden: int

    @classmethod
    def of(cls, model: torch.nn.Module) -> EncoderShape:
        """Read the shape from a Hugging Face model (PEFT-wrapped or not)."""
        config = model.config
        params = sum(
            module.weight.numel()
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not any(part in name for part in _PER_SEQUENCE_LAYERS)
        )
        return cls(params, int(config.num_hidden_layers), int(config.hidden_size))


def training_flops_per_token(shape: EncoderShape, width: int, tuning: str) -> float:
    """FLOPs of one training step per attended token (see the module docstring).

    >>> shape = EncoderShape(token_linear_params=1000, layers=2, hidden=8)
    >>> training_flops_per_token(shape, width=16, tuning="full")  # 3 × (2·1000 + 4·2·16·8)
    9072.0
    >>> training_flops_per_token(shape, width=16, tuning="lora")  # 2·1000·2 + 3·(4·2·16·8)
    7072.0
    """
    matmul = 2.0 * shape.token_linear_params
    attention = 4.0 * shape.layers * width * shape.hidden
    if tuning == "full":
        return 3 * (matmul + attention)
    if tuning == "lora":
        return 2 * matmul + 3 * attention
    raise ValueError(f"unknown tuning mode {tuning!r}")


def batch_training_flops(shape: EncoderShape, attention_mask: torch.Tensor, tuning: str) -> float:
    """FLOPs of one step on a padded batch: attended tokens × FLOPs per token at its width."""
    tokens = int(attention_mask.sum())
    return tokens * training_flops_per_token(shape, int(attention_mask.shape[1]), tuning)


def mfu(flops_per_second: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved over peak; None without a known peak.

    >>> mfu(156e12, 312.0)
    0.5
    """
    if not peak_tflops:
        return None
    return flops_per_second / (peak_tflops * 1e12)
