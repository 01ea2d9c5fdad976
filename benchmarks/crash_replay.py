"""Exactly-once under SIGKILL: replay a fixed stream while killing the trainer process 20+ times.

    .venv/bin/python -m benchmarks.crash_replay                 # 24 kills, 600 events (~5 min)
    .venv/bin/python -m benchmarks.crash_replay --quick         # 3 kills, 120 events

Run from the repository root (it imports the test harness).

Runs the crash test's harness (``streamtune.testing.crash_harness``) against an embedded broker:
each trainer run is SIGKILLed after a random number of its own versions plus a random delay, a
last run finishes the stream, and the lineage LATEST descends from is audited from the versions'
``events.json``. The baseline is the same stream with no kill, in the same run. Reported: kills,
events lost and trained twice (both must be 0), held-out and duplicate records accounted for,
wall time against the baseline, and the memory the replay buffer holds.

The model is the tiny random BERT unless ``--base-model`` is given: the audit is about
bookkeeping, and a smaller model lets each run get further between kills.
"""

from __future__ import annotations

import sys

from benchmarks.harness import (
    argument_parser,
    benchmark_settings,
    embedded_broker,
    format_table,
    machine,
    work_directory,
    write_result,
)
from streamtune.modeling.base import resolve_base_model

NAME = "crash_replay"


def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.kills, args.events = 3, 120
    started = machine()

    from streamtune.testing.crash_harness import CrashPlan, crash_stream, run_crash_replay
    from streamtune.testing.tiny_models import save_tiny_bert

    with work_directory(NAME) as work:
        base_model = args.base_model or save_tiny_bert(work / "tiny-bert", tokenizer_from=resolve_base_model(None))
        reports = {}
        with embedded_broker(work) as bootstrap:
            for label, kills in (("baseline (no kill)", 0), (f"{args.kills} kills", args.kills)):
                run_dir = work / f"run-{kills}"
                run_dir.mkdir()
                settings = benchmark_settings(
                    bootstrap,
                    run_dir,
                    base_model,
                    batch_size=8,
                    max_length=32,
                    max_batch_latency_ms=100,
                    events_topic_partitions=2,
                    keep_versions=1_000_000,
                    holdout_share=0.1,
                    gate_tolerance=1e6,  # bookkeeping under test: no quality rejection may discard
                    gate_auc_tolerance=1.0,
                    kafka_session_timeout_ms=3000,
                    device="cpu",
                )
                stream = crash_stream(args.events, settings.holdout_share, seed=args.seed)
                reports[label] = run_crash_replay(settings, stream, CrashPlan(kills, seed=args.seed), run_dir)

    baseline_seconds = reports["baseline (no kill)"].seconds
    rows = [
        [
            label,
            report.kills,
            report.kills_mid_stream,
            report.records,
            report.expected_events,
            report.trained_events,
            len(report.lost),
            len(report.duplicated),
            len(report.unexpected),
            report.held_out,
            report.duplicates_skipped,
            report.versions_in_lineage,
            report.seconds,
            round(report.seconds / baseline_seconds, 2) if baseline_seconds else None,
            int(report.replay_buffer_bytes),
        ]
        for label, report in reports.items()
    ]
    headers = [
        "run",
        "kills",
        "mid-stream",
        "records",
        "expected",
        "trained",
        "lost",
        "twice",
        "unexpected",
        "held out",
        "dup skipped",
        "versions",
        "seconds",
        "x baseline",
        "replay bytes",
    ]
    table = format_table(headers, rows)
    payload = {
        "settings": {"kills": args.kills, "events": args.events, "seed": args.seed, "base_model": base_model},
        "results": {label: report.as_dict() for label, report in reports.items()},
        "exactly_once": all(not r.lost and not r.duplicated and not r.unexpected for r in reports.values()),
    }
    write_result(args.out, NAME, started, payload, table)
    return 0 if payload["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
