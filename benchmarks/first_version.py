"""Time from the first event to the first served version, against a running stack.

Start the stack (`make up`), then run:
    .venv/bin/python benchmarks/first_version.py --events 640 --rate 100
It produces synthetic events with a plain Kafka producer, polls the server's /v1/model until it
serves version >= 1, then keeps going until every event is trained and reports the trainer's
examples/s (from its own metrics).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import httpx
from confluent_kafka import Producer

WORDS = {1: ["great", "wonderful", "excellent", "loved"], 0: ["awful", "boring", "terrible", "hated"]}


def scrape(url: str, name: str) -> float:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="user-events")
    parser.add_argument("--rest", default="http://127.0.0.1:8000")
    parser.add_argument("--trainer-metrics", default="http://127.0.0.1:9100/metrics")
    parser.add_argument("--events", type=int, default=640)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/first_version.json"))
    args = parser.parse_args()

    start_version = httpx.get(f"{args.rest}/v1/model", timeout=5).json()["model_version"]
    trained_before = scrape(args.trainer_metrics, "streamtune_examples_trained_total")
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True})
    rng = random.Random(0)
    first_event = time.perf_counter()
    first_served: float | None = None
    run = int(time.time())
    for index in range(args.events):
        label = rng.randrange(2)
        event = {
            "event_id": f"bench-{run}-{index}",
            "user_id": f"u{rng.randrange(50)}",
            "text": f"a {rng.choice(WORDS[label])} film, number {index}",
            "label": label,
            "ts": int(time.time() * 1000),
        }
        producer.produce(args.topic, json.dumps(event).encode())
        producer.poll(0)
        delay = first_event + (index + 1) / args.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if first_served is None and index % 10 == 0:
            version = httpx.get(f"{args.rest}/v1/model", timeout=5).json()["model_version"]
            if version > start_version:
                first_served = time.perf_counter()
    producer.flush(30)
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        served = httpx.get(f"{args.rest}/v1/model", timeout=5).json()["model_version"]
        if first_served is None and served > start_version:
            first_served = time.perf_counter()
        trained = scrape(args.trainer_metrics, "streamtune_examples_trained_total") - trained_before
        if first_served is not None and trained >= args.events:
            break
        time.sleep(0.2)
    trained_at = time.perf_counter()
    served_version = httpx.get(f"{args.rest}/v1/model", timeout=5).json()["model_version"]
    result = {
        "events": args.events,
        "rate": args.rate,
        "first_event_to_first_served_version_s": round(first_served - first_event, 2) if first_served else None,
        "all_trained_after_s": round(trained_at - first_event, 2),
        "trainer_examples_per_s": round(args.events / (trained_at - first_event), 1),
        "served_version_at_end": served_version,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        print(f"{key:40s} {value}")


if __name__ == "__main__":
    main()
