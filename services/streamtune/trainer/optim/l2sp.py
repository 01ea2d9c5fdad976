"""L2-SP: penalise the distance of the trainable weights from where training started.

Plain weight decay pulls weights towards zero, which for a fine-tuned model means away from
what it knew. L2-SP pulls them towards the starting point instead, a cheap guard against
drifting far from the base model on a long stream (Li, Grandvalet, Davoine, "Explicit Inductive
Bias for Transfer Learning with Convolutional Networks", ICML 2018, arXiv:1802.01483).

The anchor is the trainable state right after the model is built: the base weights for full
fine-tuning, the initial adapter and head for LoRA (where the pull therefore shrinks the
adapter's update). The paper keeps plain L2 for newly added layers; here the head is anchored
like everything else, which only matters at the very start. The anchor is a second copy of the
trainable parameters (for full fine-tuning: the whole model), held only when the weight is > 0.
"""

from __future__ import annotations

import torch


class L2SPPenalty:
    """``weight / 2 · Σ ‖θ − θ₀‖²`` over the trainable parameters.

    Examples
    --------
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> penalty = L2SPPenalty(layer, weight=2.0)
    >>> float(penalty().detach())
    0.0
    >>> with torch.no_grad():
    ...     _ = layer.weight.add_(torch.tensor([[3.0, 4.0]]))
    >>> float(penalty().detach())
    25.0
    """

    def __init__(self, model: torch.nn.Module, weight: float) -> None:
        if weight < 0:
            raise ValueError("weight must be >= 0")
        self.weight = weight
        self._pairs = [
            (parameter, parameter.detach().clone()) for parameter in model.parameters() if parameter.requires_grad
        ]

    def __call__(self) -> torch.Tensor:
        total = sum(((parameter - anchor) ** 2).sum() for parameter, anchor in self._pairs)
        return self.weight / 2 * total
