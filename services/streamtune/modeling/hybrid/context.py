"""A user's context vectors built from cached parts instead of one embedding per context.

A MovieLens context (``"liked: A; B | disliked: C"``) is unique to nearly every event, so
embedding it whole would cost a forward pass per event and defeat the cache. Its parts, the
film titles, repeat across users and events: each title is embedded once (through the cache)
and a context becomes the mean of its liked titles' vectors and the mean of its disliked
titles' vectors. Text without ``liked:``/``disliked:`` sections counts as one liked part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamtune.modeling.hybrid.text_embeddings import TextEmbedder

_SECTIONS = {"liked": 0, "disliked": 1}


def context_parts(context: str) -> tuple[list[str], list[str]]:
    """Liked and disliked titles of a context text.

    >>> context_parts("liked: Heat (1995); Up (2009) | disliked: Cats (2019)")
    (['Heat (1995)', 'Up (2009)'], ['Cats (2019)'])
    """
    parts: tuple[list[str], list[str]] = ([], [])
    for section in context.split(" | "):
        name, sep, body = section.partition(": ")
        which = _SECTIONS.get(name.strip().lower()) if sep else None
        if which is None:
            which, body = 0, section
        parts[which].extend(title.strip() for title in body.split("; ") if title.strip())
    return parts


def context_vectors(
    contexts: Sequence[str], embedder: TextEmbedder, item_texts: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Mean liked-title and mean disliked-title vectors per context (zeros when a part is empty).

    ``item_texts``: the batch's item texts, embedded in the same encoder pass as the titles where
    both use the same weights (:meth:`TextEmbedder.prefetch`); the caller then finds them cached.
    """
    parsed = [context_parts(context) for context in contexts]
    titles = list(dict.fromkeys(title for liked, disliked in parsed for title in liked + disliked))
    if item_texts:
        embedder.prefetch(item_texts, titles)
    index = {title: position for position, title in enumerate(titles)}
    # Titles go through the pretrained encoder even when the slow path adapts it: a context
    # holds many titles, and their cache then survives every change of the adapters.
    table = embedder.embed(titles, frozen=True) if titles else np.zeros((0, embedder.dim), np.float32)
    # Each side's means as a weighted sum of its few titles' rows, not a product with a dense
    # (contexts × titles) matrix: a fraction of the arithmetic, and no BLAS call, whose worker
    # threads would spin on the other core beside the training step.
    rows: tuple[list[int], list[int]] = ([], [])
    columns: tuple[list[int], list[int]] = ([], [])
    weights: tuple[list[float], list[float]] = ([], [])
    for row, sides in enumerate(parsed):
        for side, side_titles in enumerate(sides):
            for title in side_titles:
                rows[side].append(row)
                columns[side].append(index[title])
                weights[side].append(1.0 / len(side_titles))
    means = np.zeros((2, len(contexts), embedder.dim), dtype=np.float32)
    for side in (0, 1):
        if rows[side]:
            contributions = table[columns[side]] * np.asarray(weights[side], dtype=np.float32)[:, None]
            ordered = np.asarray(rows[side])  # a context's titles are adjacent, contexts in order
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            means[side, ordered[starts]] = np.add.reduceat(contributions, starts, axis=0)
    return means[0], means[1]
