"""One model being trained online: score a batch before training on it, then take one step."""

from __future__ import annotations

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from streamtune.modeling.device import autocast


def warmup_then_constant(warmup_steps: int):
    """LR multiplier: linear warm-up, then constant. A stream has no end, so no decay to zero:
    a decaying schedule would stop the model from adapting to drift."""

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / (warmup_steps + 1))

    return factor


class OnlineLearner:
    """Optimiser and steps for a model on one device.

    On CUDA the optimiser is the fused AdamW kernel and steps run under bf16 autocast where the
    GPU supports it; on CPU everything is fp32.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        learning_rate: float,
        weight_decay: float,
        warmup_steps: int,
    ) -> None:
        self.model = model.to(device)
        self.device = device
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            trainable, lr=learning_rate, weight_decay=weight_decay, fused=device.type == "cuda"
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_then_constant(warmup_steps))
        self.steps = 0

    def _to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor.to(self.device, non_blocking=True) for name, tensor in inputs.items()}

    @torch.no_grad()
    def score(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Probabilities of the positive class with the model as it is now (CPU tensor)."""
        self.model.eval()
        with autocast(self.device):
            logits = self.model(**self._to_device(inputs)).logits.squeeze(-1)
        return torch.sigmoid(logits.float()).cpu()

    def train_step(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
        """One optimisation step on a batch; returns its loss."""
        self.model.train()
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.device):
            logits = self.model(**self._to_device(inputs)).logits.squeeze(-1)
        loss = binary_cross_entropy_with_logits(logits.float(), labels)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return float(loss.detach())
