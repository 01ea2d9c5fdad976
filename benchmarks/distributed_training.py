"""Data-parallel training: examples/s of 2 ranks × 1 thread over 1 rank × 1 thread, same stream, same run.

One stream of events is produced beforehand to a topic of two partitions, so no trainer is ever
starved by a producer. Then, alternately, ``streamtune train`` (one process, one intra-op thread)
and ``streamtune train --nproc 2`` (torchrun, two ranks of one thread each, gloo on CPU, one
partition each) train the whole stream from the start into a store of their own. A run's rate
is read from its store: stream examples in the versions after the first, over the time between
the first version and the last (process start, model load and rendezvous are left out).

Each rank steps on its own micro-batch of ``STREAMTUNE_BATCH_SIZE`` events; the group averages
the gradients, so one group step trains up to twice the examples of one single-process step and
writes one version for both. Goal: ≥ 1.7× on two free cores. Every figure here is pessimistic on
a machine shared with other work: quote the ratio with the load average the JSON records.

Run from the repository root: ``python -m benchmarks.distributed_training [--quick] [--repeats N]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import (
    argument_parser,
    base_model_for,
    benchmark_settings,
    embedded_broker,
    format_table,
    machine,
    median,
    wait_until,
    work_directory,
    write_result,
)
from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.kafka.clients import ensure_topics
from streamtune.testing.crash_harness import event_records, produce_records, published_records
from streamtune.testing.events import synthetic_events
from streamtune.testing.processes import ServiceProcess
from streamtune.testing.trainer_group import TrainerGroup

NAME = "distributed_training"
PARTITIONS = 2


def _rate(store: CheckpointStore) -> tuple[float, int]:
    """Stream examples per second between the first version and the last, and the versions."""
    versions = store.versions()
    first, last = store.read_manifest(versions[0]), store.read_manifest(versions[-1])
    return (last.examples_seen - first.examples_seen) / (last.created_at_s - first.created_at_s), len(versions)


def _train(settings: Settings, ranks: int, records: int, log: Path) -> dict[str, Any]:
    """Train the whole stream with ``ranks`` ranks into a fresh store; its rate."""
    store = CheckpointStore(settings.checkpoint_dir)
    runner = ServiceProcess("train", settings, log) if ranks == 1 else TrainerGroup(settings, ranks, log)
    try:
        wait_until(lambda: published_records(store) == records, 1800, f"{ranks} rank(s) to train the stream", 0.5)
    finally:
        runner.stop()
    rate, versions = _rate(store)
    return {"ranks": ranks, "examples_per_s": rate, "versions": versions}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--events", type=int, default=None, help="events in the stream (default 1200; quick 240)")
    args = parser.parse_args(argv)
    events = args.events or (240 if args.quick else 1200)
    repeats = args.repeats or 1
    started = machine()
    with work_directory(NAME) as work_dir, embedded_broker(work_dir) as bootstrap:
        base_model = base_model_for(args, work_dir)
        common = {
            "events_topic": f"bench-distributed-{work_dir.name[-8:]}",
            "events_topic_partitions": PARTITIONS,
            "trainer_metrics_port": 0,
            "gate_tolerance": 1e6,  # throughput, not quality, is measured: nothing is discarded
            "gate_auc_tolerance": 1.0,
            "keep_versions": 100_000,  # the rate reads the first version
        }
        probe = benchmark_settings(bootstrap, work_dir, base_model, **common)
        ensure_topics(probe, [(probe.events_topic, PARTITIONS)])
        produce_records(bootstrap, probe.events_topic, event_records(synthetic_events(events, seed=3, prefix="dist")))
        runs: list[dict[str, Any]] = []
        for repeat in range(repeats):
            for ranks in (1, 2):  # alternating: neighbours share the machine's load
                settings = benchmark_settings(bootstrap, work_dir, base_model, **common)
                runs.append(
                    _train(settings, ranks, events, work_dir / f"train-{ranks}-{repeat}.log") | {"repeat": repeat}
                )
                print(f"repeat {repeat}: {ranks} rank(s) {runs[-1]['examples_per_s']:.1f} examples/s", flush=True)
    ratios = [
        pair[1]["examples_per_s"] / pair[0]["examples_per_s"] for pair in zip(runs[0::2], runs[1::2], strict=True)
    ]
    one = median([run["examples_per_s"] for run in runs if run["ranks"] == 1])
    two = median([run["examples_per_s"] for run in runs if run["ranks"] == 2])
    table = format_table(
        ["configuration", "examples/s", "vs 1 rank"],
        [["1 rank × 1 thread", one, 1.0], ["2 ranks × 1 thread", two, median(ratios)]],
    )
    payload = {
        "settings": {"events": events, "partitions": PARTITIONS, "base_model": base_model, "repeats": repeats},
        "results": {"one_rank_examples_per_s": one, "two_ranks_examples_per_s": two, "ratio": median(ratios)},
        "runs": runs,
    }
    write_result(args.out, NAME, started, payload, table)
    return payload


if __name__ == "__main__":
    main()
