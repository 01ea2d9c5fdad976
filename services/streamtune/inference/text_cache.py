"""Text embeddings in the inference server: a text is embedded once per encoder version.

Two bounded LRUs, shared by every version the server loads (a version changes tables, not the
encoder; a new encoder has a new version and so new keys):

* vectors by ``sha256(encoder version, text)`` (:class:`KeyedEmbeddingCache`, the model's
  :class:`~streamtune.modeling.hybrid.text_embeddings.EmbeddingCache` addressable by key too);
* item id -> the key of its text, learned from requests that carry both, so ``/v1/rank`` can
  score items named by id alone with their text terms (an item whose text this server never
  saw scores by its ID row and the rate prior).

At swap time the cache is warmed with the embeddings the trainer ships in each version of the
chain (``text_cache.npz``, :mod:`streamtune.modeling.hybrid.version_files`); what is still
missing is computed in batches by the encoder.

Misses of one batch go through the encoder together. One lock covers both LRUs and the
encoder: batcher workers may score side by side, and the LRUs' orders are not thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamtune.modeling.hybrid.context import context_vectors
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache, SentenceEncoder, TextEmbedder

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ROWS = 200_000  # about 300 MiB of 384-wide float32 vectors at most
DEFAULT_ITEM_ROWS = 1_000_000  # item id -> 64-character key: about 150 MiB at most


class KeyedEmbeddingCache(EmbeddingCache):
    """An :class:`EmbeddingCache` that can also be read and filled by cache key."""

    def get_key(self, key: str) -> np.ndarray | None:
        vector = self._vectors.get(key)
        if vector is not None:
            self._vectors.move_to_end(key)
        return vector

    def put_key(self, key: str, vector: np.ndarray) -> None:
        self._vectors[key] = vector
        self._vectors.move_to_end(key)
        while len(self._vectors) > self.capacity:
            self._vectors.popitem(last=False)


class ServerTexts:
    """Item and context text vectors for scoring, through the caches described above."""

    def __init__(
        self, encoder: SentenceEncoder, text_rows: int = DEFAULT_TEXT_ROWS, item_rows: int = DEFAULT_ITEM_ROWS
    ) -> None:
        self.cache = KeyedEmbeddingCache(text_rows)
        self.embedder = TextEmbedder(encoder, self.cache)
        self.item_rows = item_rows
        self._items: OrderedDict[str, str] = OrderedDict()  # item id -> text key, LRU
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.embedder.version

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def known_items(self) -> int:
        """Items whose text vector this server can find by id."""
        return len(self._items)

    def warm(self, path: Path) -> int:
        """Add the embeddings a trainer shipped with a version (``text_cache.npz``, written by
        :meth:`EmbeddingCache.save`; keys carry the encoder version, so another encoder's
        entries are simply never hit); returns how many it holds, 0 when there is no file."""
        if not path.is_file():
            return 0
        with self._lock:
            before = len(self.cache)
            self.cache.load(path)
            return len(self.cache) - before

    def item_vectors(self, item_ids: Sequence[str | None], texts: Sequence[str | None]) -> np.ndarray:
        """One vector per row: of its text if given (the item then remembers it), else of the
        item's remembered text, else zeros (the model then scores without text terms)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            given = [position for position, text in enumerate(texts) if text]
            if given:
                out[given] = self.embedder.embed([texts[position] for position in given])
            for position, item in enumerate(item_ids):
                if item is None:
                    continue
                text = texts[position]
                if text:
                    self._remember(item, EmbeddingCache.key(self.version, text))
                    continue
                key = self._items.get(item)
                vector = None if key is None else self.cache.get_key(key)
                if vector is not None:
                    self._items.move_to_end(item)
                    out[position] = vector
        return out

    def context_vectors(self, contexts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Liked and disliked history vectors of each context (see ``modeling.hybrid.context``)."""
        with self._lock:
            return context_vectors([context or "" for context in contexts], self.embedder)

    def _remember(self, item: str, key: str) -> None:
        self._items[item] = key
        self._items.move_to_end(item)
        while len(self._items) > self.item_rows:
            self._items.popitem(last=False)
