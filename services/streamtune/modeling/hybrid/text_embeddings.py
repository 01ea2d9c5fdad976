"""Sentence embeddings of event texts, computed once per distinct text and cached.

:class:`SentenceEncoder` mean-pools a pretrained encoder's last hidden states over real tokens
and L2-normalises them, as sentence-transformers trained all-MiniLM-L6-v2 to be used (its
pooler output was never trained and is nearly constant across texts).
:class:`EmbeddingCache` is a bounded LRU keyed by ``sha256(encoder version, text)``, so a
changed encoder (a new LoRA version) can never serve a stale vector, and
:class:`TextEmbedder` computes all of a batch's misses in one forward pass.

References
----------
Reimers, N., Gurevych, I. (2019). Sentence-BERT: Sentence Embeddings using Siamese
BERT-Networks. EMNLP (mean pooling).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


class SentenceEncoder:
    """A Hugging Face encoder directory used as a mean-pooled sentence embedder.

    Parameters
    ----------
    model_dir
        A local model directory (tokenizer and weights); nothing is downloaded.
    max_length
        Tokens kept per text; MovieLens item texts fit in 64.
    version
        Names the weights in cache keys; defaults to the directory name.
    """

    def __init__(self, model_dir: str, max_length: int = 64, version: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()
        self.max_length = max_length
        self.version = version or Path(model_dir).name
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings, one row per text, float32."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            tokens = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[start : start + len(chunk)] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out


class EmbeddingCache:
    """A bounded LRU of text embeddings keyed by ``sha256(version, text)``.

    Examples
    --------
    >>> cache = EmbeddingCache(capacity=1)
    >>> cache.put("v1", "a", np.ones(2, dtype=np.float32))
    >>> cache.get("v1", "a") is not None, cache.get("v2", "a") is None
    (True, True)
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    @staticmethod
    def key(version: str, text: str) -> str:
        """The cache key of ``text`` under encoder ``version``."""
        return hashlib.sha256(f"{version}\x00{text}".encode()).hexdigest()

    def get(self, version: str, text: str) -> np.ndarray | None:
        """The cached vector, or ``None`` (counted as a miss)."""
        key = self.key(version, text)
        vector = self._vectors.get(key)
        if vector is None:
            self.misses += 1
            return None
        self._vectors.move_to_end(key)
        self.hits += 1
        return vector

    def put(self, version: str, text: str, vector: np.ndarray) -> None:
        """Store a vector, evicting the least recently used one beyond the capacity."""
        self._vectors[self.key(version, text)] = vector
        self._vectors.move_to_end(self.key(version, text))
        while len(self._vectors) > self.capacity:
            self._vectors.popitem(last=False)

    def save(self, path: str | Path) -> None:
        """Write all entries to an ``.npz`` file (keys are hashes: no text is stored)."""
        keys = list(self._vectors)
        vectors = np.stack(list(self._vectors.values())) if keys else np.zeros((0, 0), np.float32)
        np.savez(path, keys=np.asarray(keys), vectors=vectors)

    def load(self, path: str | Path) -> None:
        """Add the entries of a file written by :meth:`save`."""
        with np.load(path) as data:
            for key, vector in zip(data["keys"].tolist(), data["vectors"], strict=True):
                self._vectors[key] = vector
        while len(self._vectors) > self.capacity:
            self._vectors.popitem(last=False)


class TextEmbedder:
    """Embeddings of texts through a cache; the misses of one call share one forward pass."""

    def __init__(self, encoder: SentenceEncoder, cache: EmbeddingCache | None = None) -> None:
        self.encoder = encoder
        self.cache = cache if cache is not None else EmbeddingCache()
        self.dim = encoder.dim

    @property
    def version(self) -> str:
        """The encoder version the cache keys carry."""
        return self.encoder.version

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (a zero vector for an empty text)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for position, text in enumerate(texts):
            if not text:
                continue
            vector = self.cache.get(self.version, text)
            if vector is None:
                missing.setdefault(text, []).append(position)
            else:
                out[position] = vector
        if missing:
            computed = self.encoder.encode(list(missing))
            for (text, positions), vector in zip(missing.items(), computed, strict=True):
                self.cache.put(self.version, text, vector)
                out[positions] = vector
        return out
