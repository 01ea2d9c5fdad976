"""Text embeddings in the inference server: a text is embedded once per encoder version.

Two bounded LRUs, shared by every version the server loads:

* vectors by ``sha256(encoder version, text)`` (the model's
  :class:`~streamtune.modeling.hybrid.text_embeddings.EmbeddingCache`);
* item id -> its text, learned from requests that carry both, so ``/v1/rank`` can score items
  named by id alone with their text terms under any encoder version (an item whose text this
  server never saw scores by its ID row and the rate prior).

A version trained with the slow path ships the encoder's adapters; :meth:`ServerTexts.bound_to`
gives that version its own view of the caches whose item vectors come from those adapters
(:class:`AdaptedEncoder`: one encoder in memory, each version's adapter tensors copied in before
its texts are encoded), so a version in flight never sees another version's vectors. History
titles are always embedded by the pretrained encoder (:mod:`streamtune.modeling.hybrid.context`).

At swap time the cache is warmed with the embeddings the trainer ships in each version of the
chain (``text_cache.npz``, :mod:`streamtune.modeling.hybrid.version_files`); what is still
missing is computed in batches by the encoder.

Misses of one batch go through the encoder together. One lock covers both LRUs and the
encoder (and its adapters): batcher workers may score side by side, and the LRUs' orders are
not thread-safe.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamtune.modeling.hybrid.context import context_vectors
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache, SentenceEncoder, TextEmbedder

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ROWS = 200_000  # about 300 MiB of 384-wide float32 vectors at most
DEFAULT_ITEM_ROWS = 1_000_000  # item id -> its text: about 150 MiB at most for short texts


class AdaptedEncoder:
    """The server's one encoder as one version sees it: with that version's adapters (``part``,
    as :meth:`SentenceEncoder.adapter_part` gives it) or, with None, the pretrained weights.
    Callers hold the :class:`ServerTexts` lock: encoding may swap the adapters in place."""

    def __init__(self, encoder: SentenceEncoder, part: dict[str, Any] | None) -> None:
        self._encoder = encoder
        self._part = part
        self.base_version = encoder.base_version
        self.version = self.base_version if part is None else str(part["version"])
        self.dim = encoder.dim

    def encode(self, texts: Sequence[str], batch_size: int = 64, frozen: bool = False) -> np.ndarray:
        if frozen or self._part is None:
            return self._encoder.encode(texts, batch_size, frozen=True)
        if self._encoder.version != self.version:
            self._encoder.load_adapter_part(self._part)
        return self._encoder.encode(texts, batch_size)


class ServerTexts:
    """Item and context text vectors for scoring, through the caches described above."""

    def __init__(
        self, encoder: SentenceEncoder, text_rows: int = DEFAULT_TEXT_ROWS, item_rows: int = DEFAULT_ITEM_ROWS
    ) -> None:
        self.cache = EmbeddingCache(text_rows)
        self._encoder = encoder
        self.embedder = TextEmbedder(AdaptedEncoder(encoder, None), self.cache)  # type: ignore[arg-type]
        self.item_rows = item_rows
        self._items: OrderedDict[str, str] = OrderedDict()  # item id -> text, LRU
        self._lock = threading.Lock()

    def bound_to(self, part: dict[str, Any] | None) -> ServerTexts:
        """The same caches, embedding item texts with the adapters ``part`` ships (None: the
        pretrained encoder); for one version, which keeps it for its whole life."""
        if part is None and self.embedder.version == self._encoder.base_version:
            return self
        view = copy.copy(self)  # shares the caches, the item map and the lock
        view.embedder = TextEmbedder(AdaptedEncoder(self._encoder, part), self.cache)  # type: ignore[arg-type]
        return view

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

    def item_texts(self, item_ids: Sequence[str | None], texts: Sequence[str | None]) -> list[str]:
        """Each row's item text: the one given (the item then remembers it), else the item's
        remembered text, else "" (the model then scores without text terms). A version scores
        an item's vector and its words from this one text."""
        resolved = []
        with self._lock:
            for item, text in zip(item_ids, texts, strict=True):
                if item is not None:
                    if text:
                        self._remember(item, text)
                    elif (text := self._items.get(item)) is not None:
                        self._items.move_to_end(item)
                resolved.append(text or "")
        return resolved

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text, in one encoder pass for those not cached (zeros for "")."""
        with self._lock:
            return self.embedder.embed(texts)

    def item_vectors(self, item_ids: Sequence[str | None], texts: Sequence[str | None]) -> np.ndarray:
        """The vectors of :meth:`item_texts`."""
        return self.text_vectors(self.item_texts(item_ids, texts))

    def context_vectors(
        self, contexts: Sequence[str | None], item_texts: Sequence[str | None] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Liked and disliked history vectors of each context (see ``modeling.hybrid.context``);
        uncached ``item_texts`` go through the same encoder pass, for :meth:`item_vectors` next."""
        given = [text for text in item_texts if text]
        with self._lock:
            return context_vectors([context or "" for context in contexts], self.embedder, given)

    def _remember(self, item: str, text: str) -> None:
        self._items[item] = text
        self._items.move_to_end(item)
        while len(self._items) > self.item_rows:
            self._items.popitem(last=False)
