"""Small labelled event streams with known user/item preferences, for hybrid model tests."""

from __future__ import annotations

import random
from typing import Any

GENRES = ("Horror", "Comedy")


def taste_stream(n: int, users: int = 40, items: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    """Users of two tastes rate films of two kinds; a user likes exactly the films of their taste.

    Every user and every film is liked half the time, so running like-rates carry no signal:
    only learning who likes what (user x item) beats a coin.
    """
    rng = random.Random(seed)
    events = []
    for position in range(n):
        user, item = rng.randrange(users), rng.randrange(items)
        events.append(
            {
                "user_id": f"u{user}",
                "item_id": f"i{item}",
                "text": f"Film {item} | {GENRES[item % 2]}",
                "context": "",
                "ts": position,
                "label": int(user % 2 == item % 2),
            }
        )
    return events
