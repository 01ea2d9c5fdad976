"""Compact token rows and the reservoir replay buffer, with the real tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from streamtune.ingest.training_batch import select_rows
from streamtune.modeling.encoding import encode_pairs
from streamtune.trainer.optim.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import RowFormat, TokenRows, concat_batches

WIDTH = 32


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def encode(tokenizer, texts, contexts=None):
    return encode_pairs(tokenizer, texts, contexts or [None] * len(texts), WIDTH)


def form_of(tokenizer):
    return RowFormat(WIDTH, len(tokenizer), token_types=True, pad_id=tokenizer.pad_token_id)


def rows_of(tokenizer, capacity=8):
    return TokenRows(capacity, form_of(tokenizer))


def unpadded(inputs, row):
    mask = inputs["attention_mask"][row].bool()
    return {name: tensor[row][mask].tolist() for name, tensor in inputs.items()}


def test_rows_rebuild_exactly_the_tokens_of_a_batch(tokenizer):
    inputs = encode(tokenizer, ["a great film", "an utterly and completely dull one"], ["likes drama", None])
    table = rows_of(tokenizer)
    table.put(np.array([3, 5]), inputs, np.array([0, 1]), np.array([1.0, 0.0]))
    rebuilt, labels = table.batch(np.array([5, 3]))
    assert labels.tolist() == [0.0, 1.0]
    assert unpadded(rebuilt, 0) == unpadded(inputs, 1)
    assert unpadded(rebuilt, 1) == unpadded(inputs, 0)
    assert set(rebuilt) == set(inputs)
    assert rebuilt["input_ids"].shape[1] == int(inputs["attention_mask"].sum(1).max())


def test_rows_use_two_bytes_per_id_and_one_per_token_type(tokenizer):
    table = rows_of(tokenizer, capacity=100)
    assert table.ids.dtype == np.uint16  # a 30,522-token vocabulary fits
    assert table.nbytes == 100 * WIDTH * 3 + 100 * 8
    assert form_of(tokenizer).bytes_per_row == WIDTH * 3 + 8
    assert TokenRows(1, RowFormat(WIDTH, 70_000, token_types=False, pad_id=0)).ids.dtype == np.int32


def test_concat_pads_to_the_wider_batch(tokenizer):
    short = encode(tokenizer, ["ok"])
    long = encode(tokenizer, ["a much longer text with many more words in it than the other one"])
    stacked = concat_batches(short, long, tokenizer.pad_token_id)
    assert stacked["input_ids"].shape == (2, long["input_ids"].shape[1])
    assert unpadded(stacked, 0) == unpadded(short, 0)
    assert select_rows(stacked, np.array([1]))["input_ids"].tolist() == long["input_ids"].tolist()


def buffer_for(tokenizer, capacity, max_bytes=1 << 30, seed=0):
    return ReplayBuffer(capacity, max_bytes, form_of(tokenizer), seed=seed)


def test_reservoir_is_bounded_and_uniform_over_the_stream(tokenizer):
    # Labels carry the arrival number, so the sample shows which part of the stream it holds.
    inputs = encode(tokenizer, ["x"] * 10)
    counts = np.zeros(10)
    for seed in range(200):
        buffer = buffer_for(tokenizer, capacity=5, seed=seed)
        for start in range(0, 100, 10):
            buffer.add(inputs, np.arange(10), np.arange(start, start + 10, dtype=np.float32))
        assert len(buffer) == 5 and buffer.seen == 100
        _, labels = buffer.sample(5)
        np.add.at(counts, (labels.numpy() // 10).astype(int), 1)
    # Each tenth of the stream should hold a tenth of the 1,000 sampled slots (Algorithm R).
    assert counts.min() > 60 and counts.max() < 140, counts


def test_byte_budget_lowers_the_capacity(tokenizer):
    per_row = WIDTH * 3 + 8
    buffer = buffer_for(tokenizer, capacity=1000, max_bytes=50 * per_row)
    assert buffer.capacity == 50
    inputs = encode(tokenizer, ["a film"] * 8)
    for _ in range(20):
        buffer.add(inputs, np.arange(8), np.ones(8, dtype=np.float32))
    assert len(buffer) == 50
    assert buffer.nbytes <= 50 * per_row + 50 * 16  # plus the arrival numbers and user tags


def test_forget_since_drops_what_arrived_after_the_mark(tokenizer):
    buffer = buffer_for(tokenizer, capacity=100)
    inputs = encode(tokenizer, ["a film"] * 4)
    buffer.add(inputs, np.arange(4), np.zeros(4, dtype=np.float32))
    mark = buffer.mark()
    buffer.add(inputs, np.arange(4), np.ones(4, dtype=np.float32))
    assert len(buffer) == 8
    assert buffer.forget_since(mark) == 4
    assert len(buffer) == 4 and buffer.seen == mark
    _, labels = buffer.sample(10)
    assert labels.tolist() == [0.0] * 4


def test_sampled_rows_train_like_the_originals(tokenizer, tiny_model_dir):
    """A replayed row gives the model exactly the logits of the row it was stored from."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    inputs = encode(tokenizer, ["a great film"], ["likes drama"])
    buffer = buffer_for(tokenizer, capacity=4)
    buffer.add(inputs, np.array([0]), np.array([1.0], dtype=np.float32))
    replayed, _ = buffer.sample(1)
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, model(**replayed).logits, atol=1e-6)
