"""The soak's figures from what it observed: swap latencies, the exactly-once audit, overload
ratios, and the closing table."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from benchmarks.harness import format_table
from benchmarks.soak_load import EventProducer, PredictLoad
from benchmarks.soak_probe import trained_offsets
from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.lineage import audit_lineage


def swap_latencies(store: CheckpointStore, load: PredictLoad) -> list[tuple[float, float]]:
    """(monotonic time, seconds) from each version's manifest time to the first answer it gave."""
    wall_minus_monotonic = time.time() - time.monotonic()
    first_seen: dict[int, float] = {}
    for outcome in load.outcomes:
        if outcome.version is not None and outcome.version not in first_seen:
            first_seen[outcome.version] = outcome.sent + outcome.total_s
    latencies = []
    for version, seen in sorted(first_seen.items()):
        if version == 0:
            continue
        try:
            created = store.read_manifest(version).created_at_s
        except (CheckpointError, OSError):  # pruned by retention: not measured
            continue
        latencies.append((seen, round(seen + wall_minus_monotonic - created, 3)))
    return latencies


def exactly_once(store: CheckpointStore, producer: EventProducer, partitions: int, holdout: float) -> dict:
    """Among the events the newest version covers: lost (neither trained nor accounted for),
    trained twice, and discarded (trained into candidates the quality gate refused; the trainer
    went back to the published weights and the lineage records each such event by id)."""
    offsets = trained_offsets(store)
    covered = {
        event_id
        for index, event_id in enumerate(producer.event_ids)
        if index // partitions < offsets.get(index % partitions, 0)
    }
    expected = {event_id for event_id in covered if not is_holdout(event_id, holdout)}
    audit = audit_lineage(store)
    trained = Counter(audit.trained)
    if not audit.complete:  # retention pruned the lineage (runs without kills): nothing to audit
        return {"lineage_complete": False, "events_covered": len(covered), "lost": None, "trained_twice": None}
    discarded = expected & set(audit.discarded)
    return {
        "lineage_complete": True,
        "events_covered": len(covered),
        "lost": len(expected - set(trained) - discarded),
        "trained_twice": sum(1 for count in trained.values() if count > 1),
        "discarded_by_the_gate": len(discarded - set(trained)),
    }


def summary_table(result: dict[str, Any]) -> str:
    predict, fair = result["predict_whole_run"], result["fairness_over_run"]
    rows = [
        [
            "partition shares (worst off by)",
            str({p: s["share"] for p, s in fair["partitions"].items()}),
            fair["worst_off_by"],
        ],
        ["predict ok / requests", f"{predict['ok']} / {predict['requests']}", predict["goodput_rows_per_s"]],
        ["predict p50 / p99 ms", f"{predict['p50_ms']} / {predict['p99_ms']}", None],
        ["shed rate, shed TTFB p99 ms", str(predict["shed_rate"]), predict["shed_ttfb_p99_ms"]],
        ["server's shed answer p99 ms (at most)", "", result["server_shed_p99_at_most_ms"]],
        ["5xx not shed, no answer", str(predict["status_5xx_not_shed"]), predict["failed_5xx_or_no_answer"]],
        ["memory slope MiB/h", str(result["memory_slope_mib_per_hour"]), None],
        ["swap latency s (median of)", str(len(result["swap_latency_s"])), _median(result["swap_latency_s"])],
        ["restarts", str(result["restarts"]), None],
        ["lost / trained twice", f"{result['exactly_once']['lost']} / {result['exactly_once']['trained_twice']}", None],
    ]
    rows += [
        [f"kill {k['child']}", f"ready after {k['ready_after_s']} s", k["predict_unavailable_s"]]
        for k in result["kills"]
    ]
    if "overload" in result:
        rows.append(["overload ratios", str({k: v for k, v in result["overload"].items() if "_over_" in k}), None])
    return format_table(["figure", "value", "number"], rows)


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None
