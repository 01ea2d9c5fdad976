"""The words of an item text, as keys of the ``words`` key space.

A sentence embedding tells which films are alike, but a 16-wide user factor learns only slowly
which of its 384 directions a user cares about. Words are the other half of the classic
content recommender: each word of an item text (a genre, a year, a franchise name) gets a bias
and factors of its own, and an item's side of the dot product adds the words' mean, so
``<v_user, word>`` is a user's learned taste for that word (Rendle's factorisation machine over
the item's words, as River's FM does with genres). A film seen for the first time is then
scored by what its user thought of its words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import torch

WORDS = "words"  # the key space of item-text words
_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=65_536)
def text_words(text: str, limit: int) -> tuple[str, ...]:
    """Distinct lower-case words of ``text`` in order of appearance, at most ``limit``.

    >>> text_words("Heat (1995) | Action, Crime, Action", 8)
    ('heat', '1995', 'action', 'crime')
    """
    return tuple(dict.fromkeys(_WORD.findall(text.lower())))[:limit]


def bag_layout(bags: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """For the flattened words of ``bags``: each word's event and its weight, 1/sqrt(words of
    the event), so an event's pooled words have about the norm of one row whatever its length.

    >>> events, weights = bag_layout([("a", "b", "c", "d"), (), ("e",)])
    >>> events.tolist(), weights.tolist()
    ([0, 0, 0, 0, 2], [0.5, 0.5, 0.5, 0.5, 1.0])
    """
    lengths = torch.tensor([len(bag) for bag in bags], dtype=torch.long)
    events = torch.repeat_interleave(torch.arange(len(bags)), lengths)
    weights = lengths.clamp(min=1).float().rsqrt()[events]
    return events, weights
