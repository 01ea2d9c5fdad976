"""Static shapes: few distinct shapes, and padding that changes neither loss nor gradients."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch.nn.functional import binary_cross_entropy_with_logits

from streamtune.modeling import shapes
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.shapes import ShapeBuckets, pad_batch


def test_doctests():
    result = doctest.testmod(shapes)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("max_rows", "max_length"), [(32, 128), (43, 64), (5, 20), (1, 16)])
def test_every_batch_fits_a_bucket_and_buckets_are_few(max_rows, max_length):
    buckets = ShapeBuckets(max_rows=max_rows, max_length=max_length)
    known = set(buckets.shapes())
    for rows in range(1, max_rows + 1):
        for width in range(1, max_length + 1):
            shape = buckets.shape_for(rows, width)
            assert shape in known
            assert rows <= shape[0] <= max_rows and width <= shape[1] <= max_length
    assert len(known) <= 25


def test_padding_changes_neither_the_loss_nor_the_gradients(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    torch.manual_seed(0)
    model = wrap_for_tuning(load_base_model(tiny_model_dir), TuningSpec(tuning="lora", lora_dropout=0.0)).eval()
    inputs = encode_pairs(tokenizer, ["a great film", "an awful one, far too long"], ["likes drama", None], 32)
    labels = torch.tensor([1.0, 0.0])

    def loss_and_grads(batch, targets, weights):
        model.zero_grad()
        logits = model(**batch).logits.squeeze(-1)
        losses = binary_cross_entropy_with_logits(logits, targets, reduction="none")
        loss = (losses * weights).sum() / weights.sum()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return loss.detach(), logits.detach(), grads

    plain_loss, plain_logits, plain_grads = loss_and_grads(inputs, labels, torch.ones(2))
    padded, padded_labels, weights = pad_batch(inputs, labels, (8, 32), tokenizer.pad_token_id)
    assert padded["input_ids"].shape == (8, 32) and weights.tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    loss, logits, grads = loss_and_grads(padded, padded_labels, weights)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(loss, plain_loss)
    torch.testing.assert_close(logits[:2], plain_logits)
    for grad, plain in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(grad, plain)


def test_a_batch_larger_than_the_shape_is_refused():
    inputs = {
        "input_ids": torch.ones((4, 16), dtype=torch.long),
        "attention_mask": torch.ones((4, 16), dtype=torch.long),
    }
    with pytest.raises(ValueError, match="does not fit"):
        pad_batch(inputs, torch.zeros(4), (2, 16), 0)
