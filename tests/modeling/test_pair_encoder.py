"""PairEncoder must give exactly the tensors encode_pairs gives: training and serving share them."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamtune.modeling.base import load_tokenizer
from streamtune.modeling.encoding import PairEncoder, encode_pairs

CASES = [
    (["a great film"], [None]),
    (["a great film", "an awful, boring and far too long film " * 30], ["likes drama", None]),
    (["Crème brûlée à Paris", "東京の夜 🎬", "   spaced   out   "], ["", "préfère les comédies " * 20, "x"]),
    (["word " * 200], ["context " * 200]),  # both segments truncated (longest first)
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def assert_same(tokenizer, texts, contexts, max_length):
    expected = encode_pairs(tokenizer, texts, contexts, max_length)
    actual = PairEncoder(tokenizer, max_length)(texts, contexts)
    assert list(actual) == list(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype, name
        assert torch.equal(actual[name], tensor), name


@pytest.mark.parametrize("max_length", [32, 128, 20])  # 20: no padding to a multiple of 16
@pytest.mark.parametrize(("texts", "contexts"), CASES)
def test_same_tensors_as_encode_pairs(tokenizer, texts, contexts, max_length):
    assert_same(tokenizer, texts, contexts, max_length)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.text(min_size=1, max_size=300), st.none() | st.text(max_size=200)), min_size=1, max_size=6
    )
)
def test_same_tensors_for_any_text(tokenizer, pairs):
    texts, contexts = zip(*pairs, strict=True)
    assert_same(tokenizer, list(texts), list(contexts), 64)


def test_the_encoder_is_not_disturbed_by_other_calls_on_the_tokenizer(tokenizer):
    encoder = PairEncoder(tokenizer, 32)
    before = encoder(["a great film"], ["likes drama"])
    tokenizer(["something else entirely " * 50], padding="max_length", max_length=128, truncation=True)
    after = encoder(["a great film"], ["likes drama"])
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert before["input_ids"].shape == (1, 16)


def test_an_empty_batch_gives_empty_tensors(tokenizer):
    encoded = PairEncoder(tokenizer, 32)([], [])
    assert set(encoded) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(tensor.shape == (0, 0) for tensor in encoded.values())
