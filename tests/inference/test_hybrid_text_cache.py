"""The server's text embeddings: keyed by text hash and encoder version, bounded LRU, warmed
from what the trainer ships, misses computed by the real (tiny) encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamtune.inference.text_cache import ServerTexts
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache, SentenceEncoder


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: str) -> SentenceEncoder:
    return SentenceEncoder(tiny_model_dir)


def test_misses_are_encoded_once_and_repeats_are_lookups(encoder):
    texts = ServerTexts(encoder, text_rows=10)
    batch = ["Film 1 | Horror", "Film 2 | Comedy", "Film 1 | Horror"]
    first = texts.item_vectors([None] * 3, batch)
    assert len(texts.cache) == 2  # the repeated text was encoded once
    np.testing.assert_allclose(first[0], first[2])
    np.testing.assert_allclose(first[:2], encoder.encode(batch[:2]), rtol=1e-5, atol=1e-6)
    hits = texts.cache.hits
    again = texts.item_vectors([None] * 3, batch)
    assert texts.cache.hits == hits + 3 and len(texts.cache) == 2
    np.testing.assert_array_equal(first, again)


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(encoder):
    texts = ServerTexts(encoder, text_rows=2)
    texts.item_vectors([None], ["a"])
    texts.item_vectors([None], ["b"])
    texts.item_vectors([None], ["a"])  # "a" is now the most recently used
    texts.item_vectors([None], ["c"])  # evicts "b"
    assert len(texts.cache) == 2
    assert texts.cache.get(encoder.version, "a") is not None and texts.cache.get(encoder.version, "b") is None


def test_a_shipped_cache_is_used_without_the_encoder_and_only_for_its_encoder_version(encoder, tmp_path: Path):
    shipped = EmbeddingCache()
    marker = np.full(encoder.dim, 1.0 / np.sqrt(encoder.dim), dtype=np.float32)  # no text encodes to this
    shipped.put(encoder.version, "Film 7 | Drama", marker)
    shipped.put("another-encoder", "Film 8 | Drama", marker)
    shipped.save(tmp_path / "text_cache.npz")
    texts = ServerTexts(encoder)
    assert texts.warm(tmp_path / "text_cache.npz") == 2
    assert texts.warm(tmp_path / "absent.npz") == 0
    vectors = texts.item_vectors([None, None], ["Film 7 | Drama", "Film 8 | Drama"])
    np.testing.assert_array_equal(vectors[0], marker)  # the trainer's vector, not a forward pass
    assert not np.allclose(vectors[1], marker)  # another encoder's entry never answers this one


def test_items_remember_their_text_and_unknown_items_have_none(encoder):
    texts = ServerTexts(encoder, item_rows=2)
    given = texts.item_vectors(["i1", "i2"], ["Film 1 | Horror", "Film 2 | Comedy"])
    texts.item_vectors(["i3"], ["Film 3 | Drama"])  # the item memory holds two: i1 is forgotten
    by_id = texts.item_vectors(["i1", "i2", "never seen", None], [None, None, None, None])
    assert texts.known_items() == 2
    np.testing.assert_array_equal(by_id[1], given[1])
    assert not by_id[0].any() and not by_id[2].any() and not by_id[3].any()


def test_item_texts_are_embedded_with_the_titles_before_scoring(encoder):
    """The item texts given with the contexts are embedded in the titles' pass: the item vectors
    then come from the cache (no miss left), and both equal what each kind gets on its own."""
    texts = ServerTexts(encoder, text_rows=10)
    items, contexts = ["Film 1 | Horror", None], ["liked: Film 2; Film 3 | disliked: Film 1", None]
    liked, disliked = texts.context_vectors(contexts, items)
    assert len(texts.cache) == 4  # one item text and three titles
    misses = texts.cache.misses
    item = texts.item_vectors([None, None], items)
    assert texts.cache.misses == misses
    fresh = ServerTexts(encoder, text_rows=10)
    np.testing.assert_allclose(item, fresh.item_vectors([None, None], items), atol=1e-5)
    for got, want in zip((liked, disliked), fresh.context_vectors(contexts), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
