"""Data-parallel online training on torch.distributed (``torchrun … -m streamtune train``).

One job per module: :mod:`.group` (the process group from torchrun's environment, gloo or
NCCL), :mod:`.partitions` (which rank reads which partition), :mod:`.gradients` (the dense
gradients averaged by examples), :mod:`.agreement` (what every rank agrees on each step),
:mod:`.shares` (each rank's part of a version, merged on rank 0), :mod:`.trainer` (the recipe)
and :mod:`.launch` (``streamtune train --nproc N``).
"""
