"""Static batch shapes: pad a batch up to one of a few fixed (rows, width) sizes.

A compiled model (``torch.compile``) is specialised to the shapes it has seen, and a CUDA graph
replays one exact shape; a stream's micro-batches come in every row count (latency cuts, held-out
and duplicate rows removed, replay added) and every width. Rounding rows and width up to powers
of two (sequence bucketing, Khomenko et al., 2016) bounds the distinct shapes to a handful —
``log2`` of the row range times ``log2`` of the width range — at the price of padding. Padding
rows carry weight 0 in the loss, so they change neither the loss nor any gradient; each attends
to its first position only, so its attention stays finite (an all-masked row would give NaN,
and NaN × 0 is still NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from streamtune.modeling.encoding import PAD_MULTIPLE

_ATTENTION_MASK = "attention_mask"
_INPUT_IDS = "input_ids"


def _bucket(size: int, smallest: int, largest: int) -> int:
    """``size`` rounded up to ``smallest`` × a power of two, but never beyond ``largest``."""
    bucket = smallest
    while bucket < size:
        bucket *= 2
    return min(bucket, max(largest, size))


@dataclass(frozen=True)
class ShapeBuckets:
    """The fixed shapes of batches of at most ``max_rows`` rows of ``max_length`` tokens.

    ``pad_id`` is the token the added positions get (:meth:`pad`).

    Examples
    --------
    >>> buckets = ShapeBuckets(max_rows=43, max_length=128)
    >>> buckets.shape_for(rows=32, width=48)
    (32, 64)
    >>> buckets.shape_for(rows=33, width=16)
    (43, 16)
    >>> buckets.shape_for(rows=3, width=128)
    (8, 128)
    >>> len(buckets.shapes())  # rows 8, 16, 32, 43 × widths 16, 32, 64, 128
    16
    """

    max_rows: int
    max_length: int
    pad_id: int = 0
    min_rows: int = 8
    min_width: int = PAD_MULTIPLE

    def shape_for(self, rows: int, width: int) -> tuple[int, int]:
        return (
            _bucket(rows, min(self.min_rows, self.max_rows), self.max_rows),
            _bucket(width, min(self.min_width, self.max_length), self.max_length),
        )

    def shapes(self) -> list[tuple[int, int]]:
        """Every shape a batch within the limits can be given."""
        rows = sorted({self.shape_for(count, 1)[0] for count in range(1, self.max_rows + 1)})
        widths = sorted({self.shape_for(1, width)[1] for width in range(1, self.max_length + 1)})
        return [(row, width) for row in rows for width in widths]

    def pad(
        self, inputs: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The batch padded to its bucket, and per-row loss weights (see :func:`pad_batch`)."""
        rows, width = inputs[_INPUT_IDS].shape
        return pad_batch(inputs, labels, self.shape_for(rows, width), self.pad_id)


def pad_batch(
    inputs: dict[str, torch.Tensor], labels: torch.Tensor, shape: tuple[int, int], pad_id: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """``inputs`` and ``labels`` padded to ``shape``, and per-row loss weights (0 for padding).

    Right padding (the tokenizer's default for encoders) is assumed for the added positions.
    """
    rows, width = inputs[_INPUT_IDS].shape
    target_rows, target_width = shape
    if target_rows < rows or target_width < width:
        raise ValueError(f"a batch of shape {(rows, width)} does not fit in {shape}")
    padded = {}
    for name, tensor in inputs.items():
        fill = pad_id if name == _INPUT_IDS else 0
        grown = tensor.new_full((target_rows, target_width), fill)
        grown[:rows, :width] = tensor
        if name == _ATTENTION_MASK:
            grown[rows:, 0] = 1  # padding rows attend to one position: finite attention
        padded[name] = grown
    grown_labels = labels.new_zeros(target_rows)
    grown_labels[:rows] = labels
    weights = torch.zeros(target_rows, dtype=torch.float32)
    weights[:rows] = 1.0
    return padded, grown_labels, weights
