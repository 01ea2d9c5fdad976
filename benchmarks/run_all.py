"""Run every benchmark (``make bench``) and print the headline figures of each.

Each benchmark runs as its own process (``python -m benchmarks.<name>``, from the repository
root), so one's threads, caches and memory never colour another's figures; each writes its full
JSON under ``benchmarks/results/``. The headline figures are gathered into
``benchmarks/results/summary.json`` (the one result file kept in version control).

Usage: ``python benchmarks/run_all.py [--quick] [--only freshness,ingest]``. On two CPU cores
the whole run takes about 13 minutes, and the serving benchmark (streamtune against a naive
server, each forward backend, swaps under load) about 10 more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS = (
    *("ingest", "publish_swap", "hybrid_delta_swap", "store_backends", "pipeline_efficiency", "hybrid_training"),
    "freshness",
    "distributed_training",
    *("serving", "serving_hybrid", "soak"),
)
# The soak in `make bench`: 3 minutes of the whole stack at about twice what the trainer sustains
# on two cores (40 events/s; MiniLM trains ~20/s), predict traffic beside it, one SIGKILL of each
# child (`python -m benchmarks.soak --help` for longer runs, overload and more kills).
SOAK_ARGUMENTS = ("--minutes", "3", "--events-per-s", "40", "--requests-per-s", "10")
SOAK_KILLS = ("--kill", "trainer,server", "--kills", "2", "--kill-every", "60")


def _round(value: Any, digits: int = 3) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def freshness_headline(result: dict[str, Any]) -> dict[str, Any]:
    fresh = result["freshness_s"]
    return {
        "rate_events_per_s": result["settings"]["rate"],
        "events_measured": result["events_measured"],
        "events_unserved": result["events_unserved"],
        **{f"freshness_{name}_s": _round(fresh[name], 2) for name in ("p50", "p95", "p99", "max")},
        **{f"server_histogram_{name}_s": _round(result["server_histogram_s"][name], 2) for name in ("p50", "p99")},
        "trainer_examples_per_s": _round(result["trainer"]["examples_per_s"], 1),
    }


def pipeline_headline(result: dict[str, Any]) -> dict[str, Any]:
    figures = {
        f"{config}_{key}": _round(values[key])
        for config, values in result["results"].items()
        for key in (
            *("ratio", "trained_ratio", "cpu_ratio", "bare_events_per_s", "pipeline_events_per_s"),
            *("bare_examples_per_s", "pipeline_examples_per_s", "step_busy_fraction"),
        )
    }
    return {"device": result["settings"]["device"], "headline_ratio": _round(result["headline_ratio"]), **figures}


def hybrid_training_headline(result: dict[str, Any]) -> dict[str, Any]:
    """Fast-path events/s with a warm text cache, and the pipeline at defaults over it."""
    figures = result["results"]
    return {
        "fast_path_warm_events_per_s": round(figures["fast_path_warm_events_per_s"]),
        "fast_path_cold_events_per_s": round(figures["fast_path_cold_events_per_s"]),
        "pipeline_events_per_s": round(figures["pipeline_events_per_s"]),
        "pipeline_over_bare": _round(figures["ratio"]),
    }


def ingest_headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "decode_validate_tokenize_events_per_cpu_s": round(result["headline_events_per_cpu_s"]),
        **{f"{name}_events_per_s": round(value) for name, value in result["broker_events_per_s"].items()},
    }


def publish_swap_headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{tuning}_{key}": _round(values[key], 4)
        for tuning, values in result["results"].items()
        for key in ("snapshot_s", "publish_s", "announcement_to_served_s", "server_swap_mean_s", "version_bytes")
    }


def hybrid_delta_swap_headline(result: dict[str, Any]) -> dict[str, Any]:
    """A 1,000-row hybrid delta and a full snapshot of the same tables, publish to served."""
    figures = {
        f"{kind}_{key}": _round(result["results"][kind][key], 4)
        for kind in ("delta", "snapshot")
        for key in ("publish_s", "publish_to_served_s")
    }
    return figures | {"delta_vs_snapshot": _round(result["delta_vs_snapshot"], 2)}


def store_backends_headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{size}_{operation}_{backend}": _round(values[backend][operation], 4)
        for size, values in result["results"].items()
        for operation in ("publish_s", "cold_load_s")
        for backend in ("local", "s3")
    }


def serving_headline(result: dict[str, Any]) -> dict[str, Any]:
    """Per model: each backend's throughput and p99 against the naive server at c=32, its score
    difference to torch, and the swap figures (see benchmarks/serving.py)."""
    figures: dict[str, Any] = {}
    for model, values in result["results"].items():
        for variant, ratios in values["backend_ratios"].items():
            figures[f"{model}_{variant}_throughput_vs_naive_c32"] = _round(ratios["throughput_vs_naive_c32"], 2)
            figures[f"{model}_{variant}_p99_vs_naive_c32"] = _round(ratios["p99_vs_naive_c32"], 2)
            figures[f"{model}_{variant}_score_difference"] = values["backends"][variant]["score_difference"]
        figures[f"{model}_p99_swaps_vs_steady"] = _round(values["ratios"]["p99_swaps_vs_steady"], 2)
        figures[f"{model}_errors"] = values["ratios"]["errors"]
    return figures


def soak_headline(result: dict[str, Any]) -> dict[str, Any]:
    """Fairness, predict figures, memory slopes and restarts of the soak."""
    predict = result["predict_whole_run"]
    return {
        "partition_share_worst_off_by": result["fairness_over_run"]["worst_off_by"],
        **{f"predict_{key}": predict[key] for key in ("goodput_rows_per_s", "p50_ms", "p99_ms", "shed_rate")},
        "status_5xx_not_shed": predict["status_5xx_not_shed"],
        **{f"rss_slope_{role}_mib_per_h": slope for role, slope in result["memory_slope_mib_per_hour"].items()},
        "restarts": result["restarts"],
    }


def serving_hybrid_headline(result: dict[str, Any]) -> dict[str, Any]:
    """Hybrid family on known pairs against the naive text server at c=32."""
    figures = result["result"]
    return {
        "all_pairs_known": figures["all_pairs_known"],
        **{key: _round(value, 2) for key, value in figures["ratios"].items()},
        "hybrid_throughput_rps": _round(figures["streamtune-hybrid"]["throughput_rps"], 1),
        "hybrid_cpu_ms_per_request": _round(figures["streamtune-hybrid"]["cpu_ms_per_request"], 2),
    }


def distributed_training_headline(result: dict[str, Any]) -> dict[str, Any]:
    """Examples/s of 2 ranks × 1 thread against 1 rank × 1 thread, same stream, same run."""
    return {key: _round(value, 2) for key, value in result["results"].items()}


HEADLINES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "serving": serving_headline,
    "serving_hybrid": serving_hybrid_headline,
    "soak": soak_headline,
    "freshness": freshness_headline,
    "pipeline_efficiency": pipeline_headline,
    "hybrid_training": hybrid_training_headline,
    "ingest": ingest_headline,
    "publish_swap": publish_swap_headline,
    "hybrid_delta_swap": hybrid_delta_swap_headline,
    "store_backends": store_backends_headline,
    "distributed_training": distributed_training_headline,
}


def run(name: str, quick: bool, out_dir: Path) -> tuple[dict[str, Any] | None, float]:
    """Run one benchmark in a child process; its JSON document (None if it failed) and seconds."""
    out = out_dir / f"{name}.json"
    command = [sys.executable, "-m", f"benchmarks.{name}", "--out", str(out)]
    if quick:
        command.append("--quick")
    if name == "serving" and quick:
        command = [sys.executable, "-m", "benchmarks.serving", "--out", str(out), "--models", "tiny", "--repeats", "1"]
    if name == "soak":
        command += ["--minutes", "0.5", "--events-per-s", "20"] if quick else [*SOAK_ARGUMENTS, *SOAK_KILLS]
    print(f"\n=== {name} ===", flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    code = subprocess.call(command, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - started
    if code != 0 or not out.is_file():
        print(f"{name} FAILED (exit status {code})", flush=True)
        return None, elapsed
    return json.loads(out.read_text()), elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs that only check every benchmark works")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--serving", action="store_true", help="(kept for old scripts) serving always runs")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    if args.serving and "serving" not in names:
        names.append("serving")
    unknown = set(names) - {*BENCHMARKS, "serving"}
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    summary: dict[str, Any] = {"quick": args.quick, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    failed = []
    for name in names:
        result, elapsed = run(name, args.quick, args.out_dir)
        if result is None:
            failed.append(name)
            continue
        headline = HEADLINES.get(name, lambda _: {})(result)
        summary[name] = {"seconds": round(elapsed), **headline}
    summary["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summary["total_seconds"] = round(time.perf_counter() - started)
    summary["failed"] = failed
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    print("\n=== summary ===")
    for name in names:
        if name in summary:
            figures = ", ".join(f"{key} {value}" for key, value in summary[name].items())
            print(f"{name}: {figures}")
    print(f"total {summary['total_seconds']} s; load average {summary['load_average_at_end']}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
