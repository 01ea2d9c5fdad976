"""The demo's synthetic stream: film events whose label follows a known taste, with a drift.

Known preference structure: everyone likes comedies, romances and animation and dislikes
horror, war films and documentaries (each label flipped with probability ``noise``). Half-way,
the catalogue and the tastes shift: new releases in genres never seen before arrive — musicals
and science fiction, liked; westerns and film noir, disliked — and make up three quarters of the
stream. A model that has learnt only the old genres scores the new ones no better than chance
until it has learnt them too: its prequential AUC drops at the drift and then recovers.

The old genres keep their labels after the drift, so the trainer's quality gate (which judges a
candidate on recent held-out events) lets the adapted versions through.

>>> events = demo_events(8, seed=1)
>>> sorted(events[0])
['event_id', 'event_type', 'item_id', 'label', 'text', 'ts', 'user_id']
>>> events[0]["text"].split(" | ")[1] in GENRES_BEFORE | GENRES_AFTER
True
"""

from __future__ import annotations

import random
from typing import Any

LIKED_BEFORE = ("Comedy", "Romance", "Animation")
DISLIKED_BEFORE = ("Horror", "War", "Documentary")
LIKED_AFTER = ("Musical", "Sci-Fi")
DISLIKED_AFTER = ("Western", "Film-Noir")
GENRES_BEFORE = frozenset(LIKED_BEFORE + DISLIKED_BEFORE)
GENRES_AFTER = frozenset(LIKED_AFTER + DISLIKED_AFTER)
# After the drift, this share of events is about the new genres.
NEW_GENRE_SHARE = 0.75

_ADJECTIVES = ("Silent", "Golden", "Last", "Broken", "Hidden", "Electric", "Lonely", "Midnight", "Crimson", "Wild")
_NOUNS = ("Harbor", "Garden", "Frontier", "Promise", "Machine", "River", "Letter", "Empire", "Summer", "Station")
_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def demo_events(count: int, seed: int = 0, drift_at: int | None = None, noise: float = 0.1) -> list[dict[str, Any]]:
    """``count`` events; from index ``drift_at`` (default: half-way) the tastes shift."""
    drift_at = count // 2 if drift_at is None else drift_at
    rng = random.Random(seed)
    events = []
    for index in range(count):
        drifted = index >= drift_at and rng.random() < NEW_GENRE_SHARE
        liked, disliked = (LIKED_AFTER, DISLIKED_AFTER) if drifted else (LIKED_BEFORE, DISLIKED_BEFORE)
        positive = rng.random() < 0.5
        genre = rng.choice(liked if positive else disliked)
        label = int(positive) if rng.random() >= noise else int(not positive)
        title = f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} ({rng.randrange(1950, 2026)})"
        user = rng.randrange(50)
        events.append(
            {
                "event_id": f"demo-{seed}-{index}",
                "user_id": f"demo-user-{user}",
                "item_id": f"{genre.lower()}-{rng.randrange(1000)}",
                "text": f"{title} | {genre}",
                "label": label,
                "event_type": "rating",
                "ts": _START_MS + index * 1000,
            }
        )
    return events
