"""fp32 linear layers run by oneDNN with weights packed once, on CPU: the serving torch backend's
and the hybrid's sentence encoder's (:mod:`streamtune.modeling.hybrid.text_embeddings`).

On CPU, torch runs ``nn.Linear`` in fp32 through MKL's sgemm where torch was built with MKL (the
x86 wheels). MKL picks its AVX-512 kernels only on Intel processors: on the AMD EPYC (Zen 5) of
the development machine a single-threaded sgemm of MiniLM's shapes runs at ~100 GFLOP/s, while
oneDNN, which dispatches on the instruction set alone, runs the same products at ~200–250
GFLOP/s in fp32 (``benchmarks/forward_micro.py``). oneDNN's inference linear
(``torch.ops.mkldnn._linear_pointwise``, the op ``torch.compile`` emits for frozen CPU linears)
takes a weight packed once into its preferred layout, and can apply the GELU that follows BERT's
intermediate projection in the same pass.

The arithmetic is fp32 throughout; only the summation order differs, so scores agree with the
stock module to float rounding (~1e-6). The server still checks that on the reference set when
a version loads (:mod:`streamtune.inference.backends.selection`), as for any other backend.

Versions are overlays sharing the base model's tensors (:mod:`streamtune.modeling.overlay`), so
packed weights are cached by the tensor they were packed from: the base model's linears are
packed once, and a LoRA version packs only the projections its adapters changed.
"""

from __future__ import annotations

import weakref

import torch

from streamtune.modeling.overlay import overlay_module

# The exact-erf GELU of BERT's intermediate layer, which oneDNN can fuse into the projection.
_FUSABLE_GELU = "GELUActivation"


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's packed linear (x86 and ARM wheels do)."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_linear_pointwise")


class PackedWeights:
    """Packed copies of linear weights, keyed by the tensor packed (held weakly: a version's
    own tensors go when the version does, and their packed copies with them)."""

    def __init__(self) -> None:
        self._packed: dict[int, tuple[weakref.ref, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._packed)

    def get(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` (out × in, fp32, CPU) in oneDNN's layout, packed on first use."""
        self._packed = {key: entry for key, entry in self._packed.items() if entry[0]() is not None}
        entry = self._packed.get(id(weight))
        if entry is not None and entry[0]() is weight:
            return entry[1]
        with torch.inference_mode(False), torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        self._packed[id(weight)] = (weakref.ref(weight), packed)
        return packed


class OneDnnLinear(torch.nn.Module):
    """``linear`` (fp32, CPU) run by oneDNN on its packed weight, optionally followed by GELU."""

    def __init__(self, linear: torch.nn.Linear, packed: torch.Tensor, gelu: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight  # kept for anything that reads the layer's weight
        self.bias = linear.bias
        self._packed = packed
        self._attribute = "gelu" if gelu else "none"
        self._algorithm = "none" if gelu else ""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(inputs, self._packed, self.bias, self._attribute, [], self._algorithm)


def _fusable_gelu(module: torch.nn.Module) -> bool:
    """An exact (erf) GELU module, as transformers' BERT-family intermediate layers use."""
    act = getattr(module, "act", None)
    return type(module).__name__ == _FUSABLE_GELU and act is torch.nn.functional.gelu


def with_onednn_linears(module: torch.nn.Module, packed: PackedWeights) -> torch.nn.Module:
    """A copy of ``module`` (CPU, fp32, eval) whose linear layers run on oneDNN; every tensor is
    shared with ``module``, which is not changed. An intermediate projection followed by an
    exact GELU (``intermediate.dense`` → ``intermediate_act_fn``) runs both in one oneDNN call."""
    copy = overlay_module(module, {})
    for parent in list(copy.modules()):
        fuse = isinstance(getattr(parent, "dense", None), torch.nn.Linear) and _fusable_gelu(
            getattr(parent, "intermediate_act_fn", None)
        )
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear or child.weight.dtype != torch.float32:
                continue
            if child.weight.device.type != "cpu":
                continue
            gelu = fuse and name == "dense"
            setattr(parent, name, OneDnnLinear(child, packed.get(child.weight), gelu=gelu))
        if fuse:
            parent.intermediate_act_fn = torch.nn.Identity()
    return copy
