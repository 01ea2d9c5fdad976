"""One model being trained online: score a batch before training on it, then take one step."""

from __future__ import annotations

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from streamtune.modeling.device import autocast
from streamtune.trainer.l2sp import L2SPPenalty
from streamtune.trainer.schedule import StreamSchedule


class OnlineLearner:
    """Optimiser and steps for a model on one device.

    On CUDA the optimiser is the fused AdamW kernel and steps run under bf16 autocast where the
    GPU supports it; on CPU everything is fp32. The learning rate follows a
    :class:`~streamtune.trainer.schedule.StreamSchedule` (warm-up, constant, re-warm on drift);
    with ``l2sp_weight > 0`` the loss adds an L2-SP pull towards the starting weights.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        learning_rate: float,
        weight_decay: float,
        warmup_steps: int,
        rewarm_factor: float = 1.0,
        rewarm_steps: int = 0,
        l2sp_weight: float = 0.0,
    ) -> None:
        self.model = model.to(device)
        self.device = device
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            trainable, lr=learning_rate, weight_decay=weight_decay, fused=device.type == "cuda"
        )
        self.schedule = StreamSchedule(warmup_steps, rewarm_factor, rewarm_steps)
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        # Anchored here, before any version's weights are applied: the pull is towards the base.
        self.l2sp = L2SPPenalty(self.model, l2sp_weight) if l2sp_weight > 0 else None
        self.steps = 0

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def rewarm(self) -> None:
        """Raise the learning rate again from the next step on (after a drift alarm)."""
        step = self._scheduler.last_epoch
        self.schedule.rewarm(step)
        for group, base in zip(self.optimizer.param_groups, self._scheduler.base_lrs, strict=True):
            group["lr"] = base * self.schedule(step)

    def reset_optimizer(self) -> None:
        """Forget AdamW's moments: they belong to weights that were just replaced."""
        self.optimizer.state.clear()

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
        objective = loss + self.l2sp() if self.l2sp is not None else loss
        objective.backward()
        self.optimizer.step()
        self._scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return float(loss.detach())
