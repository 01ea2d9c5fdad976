"""Swap logic with trivial loaders: no weights, no GPU."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from streamtune.errors import ModelLoadError
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics


@dataclass(frozen=True)
class Stub:
    version: int


def sample(metrics: ServingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_swaps_to_a_loaded_version_and_skips_the_served_one():
    metrics = ServingMetrics()
    loads: list[int] = []
    slot = ModelSlot(lambda v: loads.append(v) or Stub(v), metrics)
    assert slot.current is None
    assert slot.ensure(1) is True
    assert slot.ensure(1) is False
    assert slot.ensure(2) is True
    assert slot.current == Stub(2)
    assert loads == [1, 2]
    assert sample(metrics, "streamtune_model_swaps_total") == 2
    assert sample(metrics, "streamtune_serving_model_version") == 2


def test_a_failed_load_keeps_the_old_version_serving_and_is_counted():
    metrics = ServingMetrics()

    def loader(version: int) -> Stub:
        if version == 2:
            raise ModelLoadError("sha256 mismatch")
        if version == 3:
            raise RuntimeError("out of memory")
        return Stub(version)

    slot = ModelSlot(loader, metrics)
    slot.ensure(1)
    assert slot.ensure(2) is False
    assert slot.ensure(3) is False
    assert slot.current == Stub(1)
    assert sample(metrics, "streamtune_model_load_failures_total", reason="invalid") == 1
    assert sample(metrics, "streamtune_model_load_failures_total", reason="error") == 1
    assert slot.ensure(2) is False  # not retried at once...
    assert sample(metrics, "streamtune_model_load_failures_total", reason="invalid") == 1


def test_requests_keep_the_version_they_started_with_while_a_load_runs():
    release = threading.Event()
    started = threading.Event()

    def slow_loader(version: int) -> Stub:
        if version == 2:
            started.set()
            release.wait(10)
        return Stub(version)

    slot = ModelSlot(slow_loader, ServingMetrics())
    slot.ensure(1)
    loading = threading.Thread(target=slot.ensure, args=(2,))
    loading.start()
    assert started.wait(10)
    in_flight = slot.current
    assert in_flight == Stub(1)  # never a half-loaded model: the old one until the new is complete
    release.set()
    loading.join(10)
    assert slot.current == Stub(2) and in_flight == Stub(1)


def test_concurrent_requests_for_the_same_version_load_it_once():
    loads: list[int] = []
    gate = threading.Barrier(4)

    def loader(version: int) -> Stub:
        loads.append(version)
        return Stub(version)

    slot = ModelSlot(loader, ServingMetrics())

    def worker() -> None:
        gate.wait()
        slot.ensure(5)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert loads == [5]


@dataclass(frozen=True)
class VersionWithManifest:
    version: int
    manifest: dict


def test_a_newer_version_observes_the_freshness_of_the_events_it_first_includes():
    metrics = ServingMetrics()
    now_ms = int(time.time() * 1000)
    manifests = {
        1: {"produced_oldest_ms": now_ms - 8000, "produced_watermark_ms": now_ms - 2000},
        2: {},  # no stream events (e.g. restored weights): nothing to observe
    }
    slot = ModelSlot(lambda v: VersionWithManifest(v, manifests.get(v, {})), metrics)
    slot.ensure(1)
    assert sample(metrics, "streamtune_freshness_seconds_count") == 2
    total = sample(metrics, "streamtune_freshness_seconds_sum")
    assert 10.0 <= total < 10.0 + 2 * 5  # 8 s + 2 s, plus however long the test took
    slot.ensure(2)
    assert sample(metrics, "streamtune_freshness_seconds_count") == 2
    slot.swap_to(1)  # going back to an older version includes no new events
    assert sample(metrics, "streamtune_freshness_seconds_count") == 2
