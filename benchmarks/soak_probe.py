"""What the soak observes of a running stack: each process's memory, the checkpoint store, the
trainer's lag and trained offsets, the supervisor's restarts, and statistics of predict answers.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from benchmarks.harness import percentile
from benchmarks.soak_load import Outcome
from streamtune.checkpoints import CheckpointStore

SHED = (429, 503)  # deliberate refusals with Retry-After, not failures


def stack_processes(supervisor_pid: int) -> dict[str, psutil.Process]:
    """The supervisor and its children by role: broker, trainer, server, standby (the warm
    spare server). The server is the oldest serving process: a spare is only ever started
    after the server it stands in for, and taking one over leaves it the only one."""
    root = psutil.Process(supervisor_pid)
    roles = {"supervisor": root}
    servers = []
    for child in root.children(recursive=False):
        try:
            command = " ".join(child.cmdline())
            started = child.create_time()
        except psutil.Error:
            continue
        if "tansu" in command or "broker" in command:
            roles["broker"] = child
        elif command.endswith(" train") or " train " in command:
            roles["trainer"] = child
        elif command.endswith(" serve") or " serve " in command:
            servers.append((started, child.pid, child))
    for role, (_, _, child) in zip(("server", "standby"), sorted(servers), strict=False):
        roles[role] = child
    return roles


def rss_mib(processes: dict[str, psutil.Process]) -> dict[str, float]:
    sizes = {}
    for role, process in processes.items():
        try:
            sizes[role] = round(process.memory_info().rss / 2**20, 1)
        except psutil.Error:
            continue
    return sizes


def directory_bytes(path: Path) -> int:
    """Bytes under ``path``; retention may delete a version while it is walked: walk again."""
    for _ in range(5):
        try:
            return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file()) if path.exists() else 0
        except FileNotFoundError:
            continue
    return 0


def scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.read().decode("utf-8", "replace")
    except OSError:
        return ""


def labelled(text: str, name: str, label: str) -> dict[str, float]:
    """``{label value: sample}`` of metric ``name`` in a Prometheus text exposition."""
    pattern = re.compile(rf'^{name}\{{[^}}]*{label}="([^"]+)"[^}}]*\}} (\S+)$', re.MULTILINE)
    return {key: float(value) for key, value in pattern.findall(text)}


def trained_offsets(store: CheckpointStore) -> dict[int, int]:
    """Next offset to train per partition, as the newest version records it."""
    latest = store.latest_version()
    if latest is None:
        return {}
    offsets = store.read_manifest(latest).kafka_offsets
    return {int(key.rpartition(":")[2]): offset for key, offset in offsets.items()}


def predict_stats(outcomes: Sequence[Outcome], seconds: float, instances: int) -> dict[str, Any]:
    """Goodput, latency of successes, shed rate and shed time-to-first-byte over a window."""
    ok = [o.total_s for o in outcomes if o.status == 200]
    shed = [o for o in outcomes if o.status in SHED]
    failed = [o for o in outcomes if o.status not in (200, *SHED)]
    return {
        "requests": len(outcomes),
        "ok": len(ok),
        "goodput_rows_per_s": round(len(ok) * instances / seconds, 1) if seconds > 0 else None,
        "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
        "p99_ms": round(percentile(ok, 99) * 1000, 1) if ok else None,
        "shed": len(shed),
        "shed_rate": round(len(shed) / len(outcomes), 3) if outcomes else 0.0,
        "shed_ttfb_p99_ms": round(percentile([o.ttfb_s for o in shed], 99) * 1000, 1) if shed else None,
        "failed_5xx_or_no_answer": len(failed),
        "status_5xx_not_shed": sum(1 for o in failed if o.status >= 500),
    }


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return round(sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600, 1)


def fairness(advanced: dict[int, int], produced: dict[int, int]) -> dict[str, Any]:
    """Each partition's share of the trained advance against its share of the produced events."""
    total_advanced, total_produced = sum(advanced.values()), sum(produced.values())
    shares = {}
    for partition, count in sorted(produced.items()):
        expected = count / total_produced if total_produced else 0.0
        actual = advanced.get(partition, 0) / total_advanced if total_advanced else 0.0
        shares[partition] = {
            "advanced": advanced.get(partition, 0),
            "share": round(actual, 3),
            "expected": round(expected, 3),
            "off_by": round(abs(actual - expected) / expected, 3) if expected else None,
        }
    worst = max((s["off_by"] for s in shares.values() if s["off_by"] is not None), default=None)
    return {"partitions": shares, "worst_off_by": worst, "within_10_percent": worst is not None and worst <= 0.10}


def status_buckets(text: str, endpoint: str, status: str) -> dict[float, float]:
    """Cumulative bucket counts of ``streamtune_request_seconds`` for one endpoint and status."""
    found = {}
    for labels, value in re.findall(r"^streamtune_request_seconds_bucket\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if pairs.get("endpoint") == endpoint and pairs.get("status") == status:
            found[float(pairs["le"])] = float(value)
    return found


def bucket_quantile(now: dict[float, float], before: dict[float, float], q: float) -> float | None:
    """Upper bound (the bucket's ``le``) of the ``q`` quantile of what was observed between two
    scrapes of a histogram; None when nothing was."""
    counts = sorted((le, value - before.get(le, 0.0)) for le, value in now.items())
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    return next(le for le, count in counts if count >= q * total)
