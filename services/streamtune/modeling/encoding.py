"""Text → model input, identical for training and serving.

Every example is a text pair (item text, context); a missing context is encoded as an empty
second segment so that one item always gets the same tokens whatever else is in its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

# Pad to a multiple of this: fewer distinct shapes (kinder to kernels and torch.compile) for
# at most 15 wasted positions per row.
PAD_MULTIPLE = 16


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    contexts: Sequence[str | None],
    max_length: int,
) -> dict[str, torch.Tensor]:
    """Tokenize a batch of (text, context) pairs into padded tensors."""
    encoded = tokenizer(
        list(texts),
        [context or "" for context in contexts],
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        pad_to_multiple_of=PAD_MULTIPLE if max_length % PAD_MULTIPLE == 0 else None,
        return_tensors="pt",
    )
    return dict(encoded)
