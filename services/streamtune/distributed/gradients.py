"""Dense gradients averaged over the group by examples, just before every optimizer step.

Why not DistributedDataParallel: DDP all-reduces inside ``backward`` and needs every rank to
run the same forward/backward calls; a rank whose partitions had nothing in a step has no
batch to run. Here every rank steps its optimizer on every group step; a hook at the start of
``optimizer.step()`` replaces each rank's gradients with the examples-weighted mean
``Σ_r n_r·g_r / Σ_r n_r`` (one flat all-reduce), so a rank without rows contributes zeros and
still applies the group's update: the weights and AdamW's moments stay identical on every rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class GradientAverager:
    """Averages the gradients of ``optimizer``'s parameters across the group at each step.

    Set :attr:`share` (this rank's examples / the group's examples) before each step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        # param_groups keep their order on every rank: the flat buffer lines up.
        self._parameters = [p for group in optimizer.param_groups for p in group["params"]]
        self.share = 1.0
        self._handle = optimizer.register_step_pre_hook(lambda *_: self.average())

    def average(self) -> None:
        """Replace each gradient by the group's examples-weighted mean of it."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._parameters]
        flat = torch.cat([grad.detach().reshape(-1).float() for grad in grads]).mul_(self.share)
        dist.all_reduce(flat)
        offset = 0
        for parameter in self._parameters:
            size = parameter.numel()
            parameter.grad = flat[offset : offset + size].view_as(parameter).to(parameter.dtype).clone()
            offset += size

    def detach(self) -> None:
        self._handle.remove()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's weights on every rank (a fresh model's random head differs otherwise)."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)
