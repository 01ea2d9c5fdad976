"""PairEncoder must give exactly the tensors encode_pairs gives: training and serving share them."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamtune.modeling.base import load_tokenizer
from streamtune.modeling.encoding import PairEncoder, encode_pairs
from streamtune.modeling.wordpiece_cache import CachedBertPairEncoder, longest_first

# Text the memoised path takes (printable ASCII and \t\n\r), with words and characters that
# stress its rules: punctuation, "_", special tokens in any case, over-long words, control
# characters and accents that send a segment back to the tokenizer.
TRICKY_WORDS = ["[MASK]", "[cls]", "[Sep]", "don't", "e-mail", "3.14", "_x_", "x" * 120, "naïve", "a\x0bb", "\x00"]
ascii_text = st.lists(
    st.sampled_from(TRICKY_WORDS) | st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=12),
    max_size=40,
).map(" ".join)

CASES = [
    (["a great film"], [None]),
    (["a great film", "an awful, boring and far too long film " * 30], ["likes drama", None]),
    (["Crème brûlée à Paris", "東京の夜 🎬", "   spaced   out   "], ["", "préfère les comédies " * 20, "x"]),
    (["word " * 200], ["context " * 200]),  # both segments truncated (longest first)
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def assert_same(tokenizer, texts, contexts, max_length, memoise=True):
    expected = encode_pairs(tokenizer, texts, contexts, max_length)
    actual = PairEncoder(tokenizer, max_length, memoise=memoise)(texts, contexts)
    assert list(actual) == list(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype, name
        assert torch.equal(actual[name], tensor), name


@pytest.mark.parametrize("memoise", [True, False], ids=["memoised", "rust"])
@pytest.mark.parametrize("max_length", [32, 128, 20])  # 20: no padding to a multiple of 16
@pytest.mark.parametrize(("texts", "contexts"), CASES)
def test_same_tensors_as_encode_pairs(tokenizer, texts, contexts, max_length, memoise):
    assert_same(tokenizer, texts, contexts, max_length, memoise)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.text(min_size=1, max_size=300), st.none() | st.text(max_size=200)), min_size=1, max_size=6
    )
)
def test_same_tensors_for_any_text(tokenizer, pairs):
    texts, contexts = zip(*pairs, strict=True)
    assert_same(tokenizer, list(texts), list(contexts), 64)
    assert_same(tokenizer, list(texts), list(contexts), 64, memoise=False)


@pytest.mark.parametrize("memoise", [True, False], ids=["memoised", "rust"])
def test_the_encoder_is_not_disturbed_by_other_calls_on_the_tokenizer(tokenizer, memoise):
    encoder = PairEncoder(tokenizer, 32, memoise=memoise)
    before = encoder(["a great film"], ["likes drama"])
    tokenizer(["something else entirely " * 50], padding="max_length", max_length=128, truncation=True)
    after = encoder(["a great film"], ["likes drama"])
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert before["input_ids"].shape == (1, 16)


@pytest.mark.parametrize("memoise", [True, False], ids=["memoised", "rust"])
def test_an_empty_batch_gives_empty_tensors(tokenizer, memoise):
    encoded = PairEncoder(tokenizer, 32, memoise=memoise)([], [])
    assert set(encoded) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(tensor.shape == (0, 0) for tensor in encoded.values())


@settings(max_examples=150, deadline=None)
@given(
    pairs=st.lists(st.tuples(ascii_text, st.none() | ascii_text), min_size=1, max_size=6),
    max_length=st.sampled_from([8, 20, 32, 64]),
)
def test_the_memoised_path_matches_the_tokenizer_on_ascii(tokenizer, pairs, max_length):
    texts, contexts = zip(*pairs, strict=True)
    assert_same(tokenizer, list(texts), list(contexts), max_length)


def test_pair_truncation_follows_the_tokenizer_for_every_pair_of_lengths(tokenizer):
    budget = 32 - 3
    for first in range(0, 40):
        for second in range(0, 40):
            encoded = encode_pairs(tokenizer, [" ".join("a" * first)], [" ".join("b" * second)], 32)
            ids = encoded["input_ids"][0].tolist()
            a_id, b_id = tokenizer.convert_tokens_to_ids(["a", "b"])
            assert longest_first(first, second, budget) == (ids.count(a_id), ids.count(b_id)), (first, second)


def test_the_memo_is_bounded(tokenizer, monkeypatch):
    monkeypatch.setattr("streamtune.modeling.wordpiece_cache.MAX_CACHED_WORDS", 10)
    monkeypatch.setattr("streamtune.modeling.wordpiece_cache.MAX_CACHED_SEGMENTS", 5)
    encoder = CachedBertPairEncoder.for_tokenizer(tokenizer, 32, 16)
    texts = [f"unique words number {index} and w{index}x" for index in range(50)]
    first = encoder(texts, [None] * 50)
    assert len(encoder._pieces) <= 10 and len(encoder._segments) <= 5
    assert torch.equal(first["input_ids"], encoder(texts, [None] * 50)["input_ids"])
    assert torch.equal(first["input_ids"], encode_pairs(tokenizer, texts, [None] * 50, 32)["input_ids"])


def test_only_bert_wordpiece_tokenizers_take_the_memoised_path(tokenizer):
    assert CachedBertPairEncoder.for_tokenizer(tokenizer, 32, 16) is not None
    assert CachedBertPairEncoder.for_tokenizer(tokenizer, 3, None) is None  # no room for a pair
    other = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    other.backend_tokenizer.normalizer = None  # not BERT's pipeline any more
    assert CachedBertPairEncoder.for_tokenizer(other, 32, 16) is None
