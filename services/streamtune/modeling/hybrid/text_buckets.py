"""Kinds of films from their text: SimHash buckets of the sentence embedding.

Random hyperplanes through the origin cut the embedding space into ``2**bits`` cones; texts
with a small angle between them (same genres, similar tags) mostly share a cone. A bucket is a
key like any id, so the model can keep running like-counts and a learned bias for "films of
this kind" and for "this user on films of this kind" — what a film seen for the first time
can borrow from films like it.

Measured on ml-latest-small (6 bits, batches of 16): overall AUC +0.0003 on the 20,000-event
slice and cold-event AUC no better than the text terms alone, so the model keeps these rows
off by default (``HybridConfig.kind_bits = 0``).

References
----------
Charikar, M. (2002). Similarity Estimation Techniques from Rounding Algorithms. STOC.
"""

from __future__ import annotations

import numpy as np


class TextBuckets:
    """Fixed random hyperplanes (seeded, so trainer and server agree) hashing vectors to buckets.

    Examples
    --------
    >>> buckets = TextBuckets(dim=4, bits=3, seed=0)
    >>> vectors = np.array([[1.0, 0, 0, 0], [0.99, 0.05, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
    >>> same, close, empty = buckets.of(vectors)
    >>> same == close, empty
    (True, None)
    """

    def __init__(self, dim: int, bits: int, seed: int) -> None:
        self.planes = np.random.default_rng(seed).standard_normal((dim, bits)).astype(np.float32)
        self.weights = 1 << np.arange(bits)

    def of(self, vectors: np.ndarray) -> list[int | None]:
        """The bucket of each row; ``None`` for a zero vector (no text)."""
        codes = ((vectors @ self.planes) > 0) @ self.weights
        present = np.abs(vectors).sum(axis=1) > 0
        return [int(code) if has_text else None for code, has_text in zip(codes, present, strict=True)]
