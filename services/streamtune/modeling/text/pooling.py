"""How the text family turns a sequence of token states into the one vector its head scores.

``pooler`` is the Hugging Face sequence classifier as it comes: the head reads BERT's pooler
output (a tanh projection of the first token, trained by next-sentence prediction). Sentence
encoders such as all-MiniLM-L6-v2 were never trained to use it (their pooler weights are not
even in the checkpoint), so its outputs are nearly the same for every text and the head learns
little beyond the base rate. ``mean`` averages the last hidden states over the real tokens
(attention mask), the representation those encoders were trained for. ``text_mean`` averages
only the tokens of the first segment, the item text: the context (often five times longer)
still shapes those states through attention, but does not outweigh the item in the average —
measured on MovieLens with an online linear head over MiniLM embeddings, diluting the item's
embedding with the context's in proportion to their lengths cost 0.06 AUC. ``cls`` takes the
first token's state as is. Versions written before pooling was a setting used ``pooler``.

The choice is applied by giving the model a subclass of its own class whose ``forward`` pools
as chosen: parameter names, PEFT wrapping, saved weights and served overlays stay exactly as
for the stock classifier, so a version's files do not depend on the pooling.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from streamtune.errors import ConfigurationError

POOLINGS = ("text_mean", "mean", "cls", "pooler")
# What a manifest without a pooling entry was trained with.
LEGACY_POOLING = "pooler"

_subclasses: dict[tuple[type, str], type] = {}


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (rows × tokens × width) over the tokens the mask marks as real."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    # A row with no real token (never produced by the tokenizer) gives zeros, not NaN.
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class _PooledHead:
    """Mixin over a Hugging Face ``*ForSequenceClassification`` class: the head (``classifier``,
    after ``dropout``) reads the pooled last hidden states instead of the pooler output."""

    pooling: str
    base_model: torch.nn.Module
    dropout: torch.nn.Module
    classifier: torch.nn.Module

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **ignored: Any,  # what PEFT and callers pass along (labels, return_dict, …): unused
    ) -> SequenceClassifierOutput:
        del ignored
        if input_ids is None:
            raise ValueError("a pooled classifier needs input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.base_model(**inputs).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "text_mean" and token_type_ids is not None:
            pooled = masked_mean(hidden, attention_mask * (token_type_ids == 0))
        else:  # "mean", or a tokenizer without segments (the whole input is the item text)
            pooled = masked_mean(hidden, attention_mask)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


def apply_pooling(model: torch.nn.Module, pooling: str) -> torch.nn.Module:
    """``model`` (a stock sequence classifier, not yet PEFT-wrapped) made to pool as ``pooling``
    says; changed in place and returned. ``pooler`` leaves it as it is."""
    if pooling not in POOLINGS:
        raise ConfigurationError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    current = getattr(model, "pooling", LEGACY_POOLING)
    if pooling == current:
        return model
    stock = type(model).__mro__[2] if isinstance(model, _PooledHead) else type(model)
    if pooling == LEGACY_POOLING:
        model.__class__ = stock
        return model
    if not isinstance(getattr(model, "classifier", None), torch.nn.Linear) or not hasattr(model, "dropout"):
        raise ConfigurationError(
            f"{stock.__name__} has no linear classifier head: pooling {pooling!r} needs one "
            f"(set STREAMTUNE_POOLING={LEGACY_POOLING})"
        )
    key = (stock, pooling)
    if key not in _subclasses:
        name = f"{pooling.title().replace('_', '')}Pooled{stock.__name__}"
        _subclasses[key] = type(name, (_PooledHead, stock), {"pooling": pooling})
    model.__class__ = _subclasses[key]
    return model


def pooling_of(model: torch.nn.Module) -> str:
    """The pooling a (stock or pooled, not PEFT-wrapped) classifier uses."""
    return getattr(model, "pooling", LEGACY_POOLING)
