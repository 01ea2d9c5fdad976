"""What is known so far while replaying a rating log: a user's recent history, a film's tags.

Both classes only ever grow from events already replayed, so whatever they render at a given
moment is free of future information by construction. The converter decides *when* to feed them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class UserHistory:
    """The last few films each user liked and disliked, rendered as a short context text.

    Parameters
    ----------
    per_kind
        How many titles to keep for each of "liked" and "disliked".
    max_chars
        Upper bound on the rendered context, so one prolific user cannot bloat every event.

    Examples
    --------
    >>> history = UserHistory(per_kind=2)
    >>> history.context("7")
    ''
    >>> for title, liked in [("A", True), ("B", False), ("C", True), ("D", True)]:
    ...     _ = history.record("7", title, liked)
    >>> history.context("7")
    'liked: D; C | disliked: B'
    """

    def __init__(self, per_kind: int = 5, max_chars: int = 512) -> None:
        if per_kind < 1 or max_chars < 1:
            raise ValueError("per_kind and max_chars must be positive")
        self.per_kind = per_kind
        self.max_chars = max_chars
        self._liked: dict[str, deque[str]] = {}
        self._disliked: dict[str, deque[str]] = {}

    def record(self, user_id: str, title: str, liked: bool) -> UserHistory:
        """Remember that ``user_id`` rated ``title``; returns ``self``."""
        book = self._liked if liked else self._disliked
        titles = book.get(user_id)
        if titles is None:
            titles = book[user_id] = deque(maxlen=self.per_kind)
        titles.append(title)
        return self

    def context(self, user_id: str) -> str:
        """Most recent first: ``"liked: A; B | disliked: C"``; ``""`` for an unseen user."""
        parts = []
        for kind, book in (("liked", self._liked), ("disliked", self._disliked)):
            titles = book.get(user_id)
            if titles:
                parts.append(f"{kind}: " + "; ".join(reversed(titles)))
        return " | ".join(parts)[: self.max_chars]


class TagBook:
    """Each film's distinct tags in the order they were first applied, capped in number.

    Tags are compared case-insensitively and the first spelling seen is kept; beyond ``max_tags``
    new tags are ignored, so a film's text stays stable once it has enough of them.

    Examples
    --------
    >>> book = TagBook(max_tags=2)
    >>> for tag in ["funny", "Funny", " classic ", "dark"]:
    ...     _ = book.add("1", tag)
    >>> book.tags("1")
    ('funny', 'classic')
    """

    def __init__(self, max_tags: int = 10) -> None:
        if max_tags < 0:
            raise ValueError("max_tags must be >= 0")
        self.max_tags = max_tags
        self._tags: dict[str, list[str]] = {}
        self._seen: dict[str, set[str]] = {}

    def add(self, item_id: str, tag: str) -> bool:
        """Apply ``tag`` to ``item_id``; returns whether the film's tag list changed."""
        tag = " ".join(tag.split())
        key = tag.casefold()
        if not key:
            return False
        seen = self._seen.setdefault(item_id, set())
        tags = self._tags.setdefault(item_id, [])
        if key in seen or len(tags) >= self.max_tags:
            return False
        seen.add(key)
        tags.append(tag)
        return True

    def add_all(self, applications: Iterable[tuple[str, str]]) -> set[str]:
        """Apply ``(item_id, tag)`` pairs in order; returns the films whose tags changed."""
        return {item for item, tag in applications if self.add(item, tag)}

    def tags(self, item_id: str) -> tuple[str, ...]:
        """The film's tags known so far, in first-applied order."""
        return tuple(self._tags.get(item_id, ()))
