"""One model being trained online: one optimisation step per batch, scored by its own forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from streamtune.modeling.base import is_head_parameter
from streamtune.modeling.compilation import compile_model
from streamtune.modeling.device import autocast
from streamtune.modeling.shapes import ShapeBuckets
from streamtune.trainer.optim.l2sp import L2SPPenalty
from streamtune.trainer.optim.lr_schedule import StreamSchedule


@dataclass(frozen=True)
class LearnerStep:
    """What one training step reports.

    ``probabilities`` are the model's outputs for the batch's rows in the step's own forward
    pass — computed before the update, so they are the model's predictions *before* it learned
    these rows (exactly :meth:`OnlineLearner.score`'s when the learner trains without dropout).
    """

    loss: float
    probabilities: torch.Tensor  # on the CPU, one per row of the batch as given


@dataclass(frozen=True)
class LearnerConfig:
    """How the learner steps: AdamW's rates (encoder or adapters; the classification head, None:
    the same) and decay, the schedule (warm-up, re-warm after a drift alarm), the L2-SP weight,
    dropout in training steps and the compile backend."""

    learning_rate: float
    head_learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 0
    rewarm_factor: float = 1.0
    rewarm_steps: int = 0
    l2sp_weight: float = 0.0
    dropout: bool = True
    compile_backend: str | None = None


class OnlineLearner:
    """Optimiser and steps for a model on one device.

    On CUDA the optimiser is the fused AdamW kernel and steps run under bf16 autocast where the
    GPU supports it; on CPU everything is fp32. The learning rate follows a
    :class:`~streamtune.trainer.optim.lr_schedule.StreamSchedule` (warm-up, constant, re-warm on drift);
    with ``l2sp_weight > 0`` the loss adds an L2-SP pull towards the starting weights.

    With ``dropout=False`` the model trains in eval mode (no dropout; normalisation layers use
    their stored statistics): the forward pass of a step is then deterministic and its outputs
    are the pre-update predictions, which makes a separate scoring pass unnecessary
    (:attr:`step_scores_are_predictions`). With a ``compile_backend`` (``"inductor"`` in
    production) the model runs through ``torch.compile`` (:mod:`streamtune.modeling.compilation`);
    with ``shapes`` every batch is padded to one of its static shapes (padding rows weigh nothing
    in the loss), which CUDA graphs need and which bounds the recompilations.
    """

    def __init__(
        self, model: torch.nn.Module, device: torch.device, config: LearnerConfig, *, shapes: ShapeBuckets | None = None
    ) -> None:
        self.model = model.to(device)
        self.device = device
        self.optimizer = torch.optim.AdamW(
            _parameter_groups(model, config), weight_decay=config.weight_decay, fused=device.type == "cuda"
        )
        self.schedule = StreamSchedule(config.warmup_steps, config.rewarm_factor, config.rewarm_steps)
        # The head already learns near the fastest rate it stays stable at: a re-warm after a
        # drift alarm speeds up the encoder (or its adapters) only. Measured on MovieLens, a
        # head re-warmed to 3 × 1e-2 cost the windows after an alarm 0.03–0.07 AUC.
        head_schedule = StreamSchedule(config.warmup_steps)
        self._group_schedules = [
            head_schedule if group["name"] == "head" else self.schedule for group in self.optimizer.param_groups
        ]
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._group_schedules)
        # Anchored here, before any version's weights are applied: the pull is towards the base.
        self.l2sp = L2SPPenalty(self.model, config.l2sp_weight) if config.l2sp_weight > 0 else None
        self._dropout = config.dropout
        backend = config.compile_backend
        self._forward = self.model if backend is None else compile_model(self.model, device, backend)
        self.shapes = shapes
        self.steps = 0

    @property
    def learning_rate(self) -> float:
        """The encoder's (or adapters') current rate; the head's is in its own parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def step_scores_are_predictions(self) -> bool:
        """Whether :attr:`LearnerStep.probabilities` equal what :meth:`score` would have said."""
        return not self._dropout

    def rewarm(self) -> bool:
        """Raise the encoder's (or adapters') learning rate again from the next step on (after a
        drift alarm); the head's stays as it is. False, changing nothing, when re-warming is off."""
        if not self.schedule.rewarms:
            return False
        step = self._scheduler.last_epoch
        self.schedule.rewarm(step)
        for group, base, schedule in zip(
            self.optimizer.param_groups, self._scheduler.base_lrs, self._group_schedules, strict=True
        ):
            group["lr"] = base * schedule(step)
        return True

    def reset_optimizer(self) -> None:
        """Forget AdamW's moments: they belong to weights that were just replaced."""
        self.optimizer.state.clear()

    def _to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor.to(self.device, non_blocking=True) for name, tensor in inputs.items()}

    def _padded(
        self, inputs: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        if self.shapes is None:
            return inputs, labels, None
        return self.shapes.pad(inputs, labels)

    @torch.no_grad()
    def score(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Probabilities of the positive class with the model as it is now (CPU tensor)."""
        self.model.eval()
        rows = len(next(iter(inputs.values())))
        padded, _, _ = self._padded(inputs, torch.zeros(rows))
        with autocast(self.device):
            logits = self._forward(**self._to_device(padded)).logits.squeeze(-1)
        return torch.sigmoid(logits[:rows].float()).cpu()

    def train_step(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
        """One optimisation step on a batch; returns its loss."""
        return self.step(inputs, labels).loss

    def step(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> LearnerStep:
        """One optimisation step on a batch; its loss and the rows' pre-update probabilities."""
        self.model.train(self._dropout)
        rows = len(labels)
        inputs, labels, weights = self._padded(inputs, labels)
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.device):
            logits = self._forward(**self._to_device(inputs)).logits.squeeze(-1).float()
        # Taken now: a CUDA graph may reuse the forward's output memory during the backward.
        probabilities = torch.sigmoid(logits.detach()[:rows])
        if weights is None:
            loss = binary_cross_entropy_with_logits(logits, labels)
        else:
            weights = weights.to(self.device, non_blocking=True)
            losses = binary_cross_entropy_with_logits(logits, labels, reduction="none")
            loss = (losses * weights).sum() / weights.sum()
        objective = loss + self.l2sp() if self.l2sp is not None else loss
        objective.backward()
        self.optimizer.step()
        self._scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return LearnerStep(float(loss.detach()), probabilities.cpu())

    def idle_step(self) -> None:
        """Take part in a data-parallel step without rows of its own: no gradient here, the
        optimizer steps on those the group averages in (:mod:`streamtune.distributed.gradients`),
        so every rank's weights stay equal."""
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.step()
        self._scheduler.step()
        self.steps += 1


def _parameter_groups(model: torch.nn.Module, config: LearnerConfig) -> list[dict[str, object]]:
    """AdamW's parameter groups: the encoder (or its adapters) first, then the head.

    The head is a single linear layer on a fixed-size vector, freshly initialised: it needs a
    far larger rate than the adapters or pretrained weights under it to learn more than the
    base rate within the events a stream gives it, while that rate would wreck the encoder.
    """
    head_rate = config.head_learning_rate or config.learning_rate
    body: list[torch.nn.Parameter] = []
    head: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (head if is_head_parameter(name) else body).append(parameter)
    if not body and not head:
        raise ValueError("the model has no trainable parameters")
    groups = [
        {"params": body, "lr": config.learning_rate, "name": "body"},
        {"params": head, "lr": head_rate, "name": "head"},
    ]
    return [group for group in groups if group["params"]]
