"""Synthetic events with a learnable signal, and producing them to a topic."""

from __future__ import annotations

import json
import random

from confluent_kafka import Producer

POSITIVE_WORDS = ["great", "wonderful", "excellent", "loved", "brilliant", "superb"]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "hated", "dull", "poor"]


def synthetic_events(count: int, seed: int = 0, prefix: str = "ev") -> list[dict]:
    """Events whose label is decided by the sentiment word in their text."""
    rng = random.Random(seed)
    events = []
    for index in range(count):
        label = rng.random() < 0.5
        word = rng.choice(POSITIVE_WORDS if label else NEGATIVE_WORDS)
        events.append(
            {
                "event_id": f"{prefix}-{index}",
                "user_id": f"u{rng.randrange(20)}",
                "item_id": f"i{rng.randrange(100)}",
                "text": f"a {word} film number {index}",
                "context": "likes drama",
                "label": int(label),
                "ts": 1_700_000_000_000 + index,
            }
        )
    return events


def produce(bootstrap: str, topic: str, values: list[bytes | dict], key: bytes | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for value in values:
        raw = json.dumps(value).encode() if isinstance(value, dict) else value
        producer.produce(topic, value=raw, key=key)
    assert producer.flush(30) == 0, "events were not acknowledged"
