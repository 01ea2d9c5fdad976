"""The soak's overload phases: the server's capacity (closed loop), its unloaded latency (a light
open loop), then an open loop at a multiple of that capacity — and, for each phase, what the
server's own counters say its workers did.

Two cores shared with other jobs make a capacity measured once, minutes before the overload, a
poor yardstick: the machine's speed moves with the other jobs. So capacity is measured before
and after the overload, and for every phase the server reports how busy its batcher workers
were (scoring seconds over wall seconds and workers) and how many rows they scored per busy
second. Goodput below capacity then splits into what the server did (idle workers, rows scored
for nobody) and what the machine did (fewer rows per busy second).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import load_average
from benchmarks.soak_load import PredictLoad
from benchmarks.soak_probe import predict_stats, scrape


def _counter(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


class ServerWork:
    """The server's scoring counters between two readings: worker utilisation, rows per busy
    second, rows scored."""

    def __init__(self, metrics_url: str, workers: int = 2) -> None:
        self.url, self.workers = metrics_url, workers
        self._last = self._read()

    def _read(self) -> tuple[float, float, float]:
        text = scrape(self.url)
        busy = _counter(text, "streamtune_inference_busy_seconds_total")
        return time.monotonic(), busy, _counter(text, "streamtune_predictions_total")

    def since_last(self) -> dict[str, Any]:
        now = self._read()
        (then, busy_then, rows_then), (at, busy, rows) = self._last, now
        self._last = now
        busy_s, scored = busy - busy_then, rows - rows_then
        return {
            "worker_utilisation": round(busy_s / max(1e-9, (at - then) * self.workers), 3),
            "rows_per_busy_s": round(scored / busy_s, 1) if busy_s > 0 else None,
            "rows_scored": int(scored),
            "load_average": load_average(),
        }


def _phase(load: PredictLoad, work: ServerWork, seconds: float, instances: int, start: Callable[[], None]):
    start()
    work.since_last()
    begin, first = time.monotonic(), len(load.outcomes)
    time.sleep(seconds)
    stats = predict_stats(load.outcomes[first:], time.monotonic() - begin, instances)
    return stats | {"server": work.since_last()}


def measure_capacity(load: PredictLoad, work: ServerWork, seconds: float, instances: int) -> dict[str, Any]:
    """Goodput with a closed loop keeping 8 requests in flight: the server's capacity."""

    def closed_loop() -> None:
        load.concurrency = 8
        time.sleep(3)  # warm

    stats = _phase(load, work, seconds, instances, closed_loop)
    load.set_rate(0)
    time.sleep(1)
    return stats


def overload_phases(args: Any, load: PredictLoad, work: ServerWork) -> dict[str, Any]:
    """Capacity, then unloaded latency (open loop at a fifth of capacity); sets the overload's
    request rate (``args.overload`` times capacity)."""
    phases = {"capacity": measure_capacity(load, work, args.phase_s, args.instances)}
    capacity_rps = phases["capacity"]["ok"] / args.phase_s
    light = max(1.0, 0.2 * capacity_rps)
    phases["unloaded"] = _phase(load, work, args.phase_s, args.instances, lambda: load.set_rate(light))
    args.requests_per_s = args.overload * capacity_rps
    print(f"capacity {phases['capacity']}\nunloaded {phases['unloaded']}", flush=True)
    work.since_last()  # the overload's server counters start here
    return phases


def after_overload(phases: dict[str, Any], load: PredictLoad, work: ServerWork, args: Any) -> dict[str, Any]:
    """Close the overload phase (its server counters) and measure capacity again."""
    phases["overloaded"]["server"] = work.since_last()
    phases["capacity_after"] = measure_capacity(load, work, args.phase_s, args.instances)
    print(f"capacity after {phases['capacity_after']}", flush=True)
    return phases


def overload_ratios(overload: dict[str, Any]) -> dict[str, Any]:
    """Goodput against capacity (before, after, and their mean), p99 of successes against the
    unloaded p99; and the server's rows per busy second under overload against capacity's."""
    loaded, unloaded = overload.get("overloaded", {}), overload["unloaded"]
    capacities = [overload[name]["goodput_rows_per_s"] for name in ("capacity", "capacity_after") if name in overload]
    if not loaded or not all(capacities) or not unloaded["p99_ms"] or not loaded.get("p99_ms"):
        return {}
    goodput = loaded["goodput_rows_per_s"]
    ratios = {
        "goodput_over_capacity": round(goodput / capacities[0], 3),
        "goodput_over_mean_capacity": round(goodput / (sum(capacities) / len(capacities)), 3),
        "p99_over_unloaded_p99": round(loaded["p99_ms"] / unloaded["p99_ms"], 2),
    }
    if len(capacities) == 2:
        ratios["goodput_over_capacity_after"] = round(goodput / capacities[1], 3)
    speeds = [overload[name].get("server", {}).get("rows_per_busy_s") for name in ("capacity", "overloaded")]
    if all(speeds):
        ratios["rows_per_busy_s_overloaded_over_capacity"] = round(speeds[1] / speeds[0], 3)
    return ratios
