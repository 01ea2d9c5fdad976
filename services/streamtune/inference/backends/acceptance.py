"""A faster backend serves a version only if its scores match torch's on a reference set.

The check runs when a version loads: the reference pairs below are scored by plain torch (fp32
on CPU) and by the candidate, and the largest absolute difference of the probabilities must not
exceed the candidate's tolerance. ONNX Runtime in fp32 computes the same function with other
kernels and fused operators, so it must agree to float rounding; int8 weights change the
function, and are allowed a difference that does not reorder items of distinct interest.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamtune.errors import StreamtuneError
from streamtune.inference.backends.base import Backend, BackendSpec, Features

# Largest |probability difference| to torch fp32 accepted, by quantization. Measured on
# all-MiniLM-L6-v2 (the reference set, base and LoRA versions): ONNX fp32 ≤ 1e-7, int8 ≤ 0.005.
TOLERANCES = {"none": 1e-4, "int8": 0.02}

# (item text, context) pairs of everyday and edge lengths, one length group per forward.
REFERENCE_PAIRS = (
    ("a", None),
    ("space opera", "likes sci-fi"),
    ("a quiet drama about a family and a river in winter", "likes drama, romance"),
    ("detective story set in a city at night, with a ghost and a secret", "likes thriller, horror"),
    ("comedy", "likes comedy, animation, documentary"),
    ("the king's journey across the ocean to find a machine that dreams " * 3, "likes sci-fi"),
    ("war film: friends and enemies, fire and music, heart and road " * 6, None),
    ("documentary on robots", "likes documentary"),
)


class BackendMismatchError(StreamtuneError):
    """A backend's scores differ from torch's by more than its tolerance."""


@dataclass(frozen=True)
class Agreement:
    """How closely a candidate backend matched torch on the reference set."""

    backend: str
    max_difference: float
    tolerance: float

    @property
    def accepted(self) -> bool:
        return self.max_difference <= self.tolerance


def tolerance_for(spec: BackendSpec) -> float:
    return TOLERANCES[spec.quantize] if spec.tolerance is None else spec.tolerance


def compare(candidate: Backend, reference: Backend, batches: list[Features], tolerance: float) -> Agreement:
    """Score ``batches`` with both backends; the largest difference over all rows."""
    worst = 0.0
    for features in batches:
        expected, got = reference.probabilities(features), candidate.probabilities(features)
        if len(expected) != len(got):
            raise BackendMismatchError(f"{candidate.name} returned {len(got)} scores for {len(expected)} rows")
        worst = max(worst, *(abs(a - b) for a, b in zip(expected, got, strict=True)))
    return Agreement(candidate.name, worst, tolerance)
