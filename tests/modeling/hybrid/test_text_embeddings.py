"""Mean-pooled sentence embeddings through a cache keyed by text hash and encoder version."""

from __future__ import annotations

import numpy as np
import pytest

from streamtune.modeling.hybrid.context import context_vectors
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache, SentenceEncoder, TextEmbedder


@pytest.fixture(scope="module")
def tiny_embedder(tiny_model_dir):
    return TextEmbedder(SentenceEncoder(tiny_model_dir, version="tiny-v1"), EmbeddingCache(capacity=3))


def test_each_distinct_text_is_encoded_once(tiny_embedder):
    cache = tiny_embedder.cache
    first = tiny_embedder.embed(["Heat (1995)", "Heat (1995)", "Up (2009)", ""])
    misses = cache.misses
    again = tiny_embedder.embed(["Up (2009)", "Heat (1995)"])
    assert cache.misses == misses and cache.hits >= 2
    np.testing.assert_array_equal(again, first[[2, 0]])
    np.testing.assert_allclose(np.linalg.norm(first[:3], axis=1), 1.0, rtol=1e-5)
    assert not first[3].any()  # an empty text is no text


def test_a_new_encoder_version_never_reads_old_vectors(tiny_embedder):
    tiny_embedder.embed(["Alien (1979)"])
    assert tiny_embedder.cache.get("tiny-v2", "Alien (1979)") is None
    assert tiny_embedder.cache.get("tiny-v1", "Alien (1979)") is not None


def test_the_cache_is_bounded_and_survives_a_file(tiny_embedder, tmp_path):
    cache = tiny_embedder.cache
    tiny_embedder.embed(["a", "b", "c", "d"])
    assert len(cache) == 3 and cache.get("tiny-v1", "a") is None
    cache.save(tmp_path / "cache.npz")
    restored = EmbeddingCache(capacity=3)
    restored.load(tmp_path / "cache.npz")
    np.testing.assert_array_equal(restored.get("tiny-v1", "d"), cache.get("tiny-v1", "d"))


def test_context_vectors_average_the_cached_titles(tiny_embedder):
    liked, disliked = context_vectors(["liked: a; b | disliked: c", ""], tiny_embedder)
    a, b, c = tiny_embedder.embed(["a", "b", "c"])
    np.testing.assert_allclose(liked[0], (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(disliked[0], c, rtol=1e-6)
    assert not liked[1].any() and not disliked[1].any()


def test_the_real_encoder_puts_related_films_closer(minilm_dir):
    embedder = TextEmbedder(SentenceEncoder(minilm_dir))
    horror, slasher, cartoon = embedder.embed(
        ["Scream (1996) | Horror, Thriller", "Halloween (1978) | Horror", "Toy Story (1995) | Animation, Children"]
    )
    assert horror @ slasher > horror @ cartoon + 0.05


def test_pretrained_embeddings_run_on_packed_linears_and_adapted_ones_do_not(tiny_model_dir):
    """Embeddings with the pretrained weights come from a copy whose linears run on oneDNN (where
    this torch has it); they equal the stock module's, before and after adapters are attached,
    and the adapted encoder embeds with its adapters."""
    import torch

    from streamtune.modeling.hybrid.encoder_lora import LoraShape
    from streamtune.modeling.onednn import OneDnnLinear, onednn_available

    encoder = SentenceEncoder(tiny_model_dir)
    texts = ["Heat (1995) | Action, Crime", "Up (2009) | Animation", "a"]

    def stock() -> np.ndarray:
        with torch.inference_mode():
            return torch.nn.functional.normalize(encoder._pooled(texts, encoder.model), dim=1).numpy()

    packed = any(isinstance(module, OneDnnLinear) for module in encoder._pretrained.modules())
    assert packed == onednn_available()
    pretrained = encoder.encode(texts)
    np.testing.assert_allclose(pretrained, stock(), atol=1e-5)

    encoder.attach_adapters(LoraShape(rank=2, alpha=4.0))
    with torch.no_grad():
        for name, parameter in encoder.model.named_parameters():
            if name.endswith(".up"):
                parameter.normal_(std=0.5)
    encoder.adapters_changed()
    np.testing.assert_allclose(encoder.encode(texts, frozen=True), pretrained, atol=1e-5)
    adapted = encoder.encode(texts)
    np.testing.assert_allclose(adapted, stock(), atol=1e-5)
    assert np.abs(adapted - pretrained).max() > 1e-3


class _CountingEncoder:
    """The real encoder, counting its forward passes."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.inner, self.passes = encoder, 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, texts, batch_size: int = 64, frozen: bool = False) -> np.ndarray:
        self.passes += 1
        return self.inner.encode(texts, batch_size, frozen=frozen)


def test_prefetch_embeds_a_batchs_item_texts_and_titles_in_one_pass(tiny_model_dir):
    """The hybrid's batch path: item texts and history titles, uncached, cost one forward pass,
    and the vectors are those each kind gets on its own (padding to a longer text in the same
    pass changes only float rounding)."""
    items = ["Heat (1995) | Action, Crime", "Up (2009) | Animation", ""]
    contexts = ["liked: Alien (1979); Heat (1995) | disliked: Cats (2019)", ""]
    alone = TextEmbedder(SentenceEncoder(tiny_model_dir))
    expected_items, expected_history = alone.embed(items), context_vectors(contexts, alone)

    counting = _CountingEncoder(SentenceEncoder(tiny_model_dir))
    embedder = TextEmbedder(counting)  # type: ignore[arg-type]
    history = context_vectors(contexts, embedder, items)
    assert counting.passes == 1
    item_vectors = embedder.embed(items)
    assert counting.passes == 1  # everything came from the cache
    np.testing.assert_allclose(item_vectors, expected_items, atol=1e-5)
    for got, want in zip(history, expected_history, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    context_vectors(contexts, embedder, items)
    assert counting.passes == 1  # nothing left to compute


def test_prefetch_leaves_texts_of_trained_adapters_to_embed(tiny_model_dir):
    """With trained adapters the item texts and the titles come from different weights, so a
    shared pass would be wrong: prefetch computes nothing and embed() does each kind."""
    from streamtune.modeling.hybrid.encoder_lora import LoraShape

    counting = _CountingEncoder(SentenceEncoder(tiny_model_dir))
    counting.inner.attach_adapters(LoraShape(rank=2, alpha=4.0))
    counting.inner.adapters_changed()
    embedder = TextEmbedder(counting)  # type: ignore[arg-type]
    assert embedder.version != counting.base_version
    embedder.prefetch(["Heat (1995)"], ["Alien (1979)"])
    assert counting.passes == 0 and len(embedder.cache) == 0
