"""What a forward-pass backend is, and which one the settings ask for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

# One padded length group of model inputs (input_ids, attention_mask, token_type_ids).
Features = Mapping[str, torch.Tensor]


class Backend(Protocol):
    """Scores one padded batch; ``name`` says what runs it (e.g. ``onnx-int8``)."""

    name: str

    def probabilities(self, features: Features) -> list[float]:
        """Probability of the positive class for each row of ``features``."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    """The backend the settings ask for (``STREAMTUNE_SERVE_BACKEND``, ``STREAMTUNE_SERVE_QUANTIZE``),
    and the largest score difference to torch it may show at load (None: the one for its
    quantisation, :data:`~streamtune.inference.backends.acceptance.TOLERANCES`)."""

    kind: Literal["torch", "onnx"] = "torch"
    quantize: Literal["none", "int8"] = "none"
    tolerance: float | None = None

    @property
    def name(self) -> str:
        return self.kind if self.quantize == "none" else f"{self.kind}-{self.quantize}"

    @property
    def is_plain_torch(self) -> bool:
        """Plain torch is the reference every other backend is checked against."""
        return self.kind == "torch" and self.quantize == "none"
