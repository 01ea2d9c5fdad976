"""Low-rank adapters on the sentence encoder's attention projections (the hybrid's slow path).

Each targeted ``nn.Linear`` (BERT's ``query`` and ``value`` by default) is wrapped in
:class:`LoraLinear`: ``W x + (alpha / r) B A x`` with ``W`` frozen and ``B`` starting at zero,
so an encoder with fresh adapters embeds exactly as the pretrained one. Adapters can be switched
off per call (:func:`adapters_disabled`), which gives the pretrained encoder back without a
second copy of its weights: the history titles of a context stay on it (see
:mod:`streamtune.modeling.hybrid.text_embeddings`).

A set of adapters is named by a digest of its tensors (:func:`adapter_digest`): the encoder
version in every text-cache key and in every version's manifest payload, so an embedding
computed under other adapters can never be served. Written by hand rather than through PEFT:
the adapter tensors are a plain dict with stable names, shipped inside a hybrid version.

References
----------
Hu, E. J. et al. (2022). LoRA: Low-Rank Adaptation of Large Language Models. ICLR.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LoraShape:
    """Rank, scale and target module names of the adapters (what a server needs to attach them)."""

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("query", "value")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LoraShape:
        return cls(int(data["rank"]), float(data["alpha"]), tuple(data["targets"]))  # type: ignore[arg-type]


class LoraLinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``(alpha / r) B A``."""

    def __init__(self, base: nn.Linear, shape: LoraShape) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.down = nn.Parameter(torch.empty(shape.rank, base.in_features))  # A
        self.up = nn.Parameter(torch.zeros(base.out_features, shape.rank))  # B: starts as a no-op
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self.scale = shape.alpha / shape.rank
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.enabled:
            out = out + (x @ self.down.T @ self.up.T) * self.scale
        return out


def attach(model: nn.Module, shape: LoraShape, seed: int = 0) -> None:
    """Wrap ``model``'s target linears in :class:`LoraLinear` and freeze everything else."""
    model.requires_grad_(False)
    targets = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if name in shape.targets and isinstance(child, nn.Linear)
    ]
    if not targets:
        raise ValueError(f"no linear layer named any of {shape.targets} in {type(model).__name__}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # the same adapters' A for the same seed, in trainer and tests
    try:
        for parent, name in targets:
            setattr(parent, name, LoraLinear(getattr(parent, name), shape))
    finally:
        torch.random.set_rng_state(generator_state)


def lora_layers(model: nn.Module) -> list[tuple[str, LoraLinear]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, LoraLinear)]


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable tensors: each adapter's A and B."""
    return [p for _, layer in lora_layers(model) for p in (layer.down, layer.up)]


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every adapter tensor, by stable name (``<module>.down`` / ``<module>.up``)."""
    state: dict[str, torch.Tensor] = {}
    for name, layer in lora_layers(model):
        state[f"{name}.down"] = layer.down.detach().cpu().clone()
        state[f"{name}.up"] = layer.up.detach().cpu().clone()
    return state


@torch.no_grad()
def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into the attached adapters, in place (optimizers keep their tensors)."""
    layers = dict(lora_layers(model))
    if {f"{name}.{part}" for name in layers for part in ("down", "up")} != set(state):
        raise ValueError("adapter tensors do not match the encoder's adapters")
    for name, layer in layers.items():
        layer.down.copy_(state[f"{name}.down"])
        layer.up.copy_(state[f"{name}.up"])


def adapter_digest(state: dict[str, torch.Tensor]) -> str:
    """12 hex digits of sha256 over the adapters' names and float32 bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """The pretrained encoder for the duration (the adapters stay attached)."""
    layers = [layer for _, layer in lora_layers(model)]
    for layer in layers:
        layer.enabled = False
    try:
        yield
    finally:
        for layer in layers:
            layer.enabled = True
