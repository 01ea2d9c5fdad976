"""The soak's load: events produced at a steady rate over every partition, and predict requests
sent open-loop (at a fixed rate whatever the answers, as real clients do) by a small raw HTTP
client that times the first byte of each answer.

A raw client rather than httpx: at a few hundred requests a second on the same two cores a full
client costs the server a noticeable share of the CPU, and the time to the first byte of a shed
answer is what admission control promises.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import Producer

from benchmarks.harness import encoded, synthetic_events

_TIMEOUT_S = 5.0  # the client timeout of the soak in the issue


@dataclass(frozen=True, slots=True)
class Outcome:
    """One predict request: when it was sent, its status (0: no answer), timings, version."""

    sent: float  # monotonic
    status: int
    ttfb_s: float | None
    total_s: float
    version: int | None


class EventProducer(threading.Thread):
    """Produce synthetic events at ``rate`` per second, partition by partition in turn."""

    def __init__(self, bootstrap: str, topic: str, rate: float, partitions: int) -> None:
        super().__init__(name="soak-events", daemon=True)
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        self._topic = topic
        self.rate = rate
        self._partitions = partitions
        self.produced: Counter[int] = Counter()
        self.event_ids: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        index = 0
        started = time.monotonic()
        pool = synthetic_events(2000, seed=7, prefix="soak")
        while not self.halt.is_set():
            if self.rate <= 0:
                self.halt.wait(0.2)
                started, index = time.monotonic(), 0
                continue
            due = started + index / self.rate
            if (wait := due - time.monotonic()) > 0:
                self.halt.wait(wait)
                continue
            partition = len(self.event_ids) % self._partitions
            event = {**pool[len(self.event_ids) % len(pool)], "event_id": f"soak-{len(self.event_ids)}"}
            self._producer.produce(self._topic, encoded(event, int(time.time() * 1000)), partition=partition)
            self._producer.poll(0)
            self.produced[partition] += 1
            self.event_ids.append(event["event_id"])
            index += 1
        self._producer.flush(30)


class PredictLoad(threading.Thread):
    """Send predict requests of ``instances`` rows at ``rate`` per second, each from one of a
    few client ids, and keep every :class:`Outcome`. ``concurrency`` > 0 switches to a closed
    loop (that many requests always in flight), which measures capacity."""

    def __init__(self, host: str, port: int, rate: float, instances: int = 4, clients: int = 8) -> None:
        super().__init__(name="soak-predict", daemon=True)
        self.host, self.port = host, port
        self.rate = rate
        self.concurrency = 0
        self._instances = instances
        self._clients = clients
        self.outcomes: list[Outcome] = []
        self.halt = threading.Event()
        texts = [event["text"] for event in synthetic_events(64, seed=3, prefix="q")]
        self._bodies = [
            json.dumps({"instances": [{"text": texts[(i + k) % len(texts)]} for k in range(instances)]}).encode()
            for i in range(len(texts))
        ]

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        in_flight: set[asyncio.Task] = set()
        index = 0  # requests sent in all
        rate, scheduled, started = self.rate, 0, time.monotonic()  # the open loop's schedule
        while not self.halt.is_set():
            if self.concurrency > 0 or self.rate <= 0:
                while len(in_flight) < self.concurrency:
                    task = asyncio.create_task(self._one(index))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    index += 1
                await asyncio.sleep(0.001 if self.concurrency else 0.1)
                scheduled, started = 0, time.monotonic()
                continue
            if rate != self.rate:  # a new rate: a new schedule
                rate, scheduled, started = self.rate, 0, time.monotonic()
            due = started + scheduled / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(min(wait, 0.1))
                continue
            task = asyncio.create_task(self._one(index))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            index += 1
            scheduled += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=_TIMEOUT_S + 1)

    def set_rate(self, rate: float) -> None:
        """Switch to an open loop of ``rate`` requests a second."""
        self.concurrency = 0
        self.rate = rate

    async def _one(self, index: int) -> None:
        body = self._bodies[index % len(self._bodies)]
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Client-Id: client-{index % self._clients}\r\n"
            f"X-Request-Deadline-Ms: {int(_TIMEOUT_S * 1000)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sent = time.monotonic()
        status, ttfb, version = 0, None, None
        writer = None
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(head + body)
                await writer.drain()
                status_line = await reader.readline()
                ttfb = time.monotonic() - sent
                status = int(status_line.split()[1]) if status_line else 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "x-model-version":
                        version = int(value)
                await reader.read()
        except (TimeoutError, OSError, ValueError, IndexError):
            pass  # status stays 0: no (complete) answer
        finally:
            if writer is not None:
                writer.close()
        self.outcomes.append(Outcome(sent, status, ttfb, time.monotonic() - sent, version))
        if self.concurrency and status in (429, 503):
            await asyncio.sleep(0.02)  # a closed loop must not turn sheds into a retry storm
