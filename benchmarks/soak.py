"""Soak: the whole stack (`streamtune up`: embedded broker, trainer, server) under steady events
and predict traffic for minutes, optionally with SIGKILLs of its children or a serving overload.

Every ``--report-every`` seconds and at the end it reports: resident memory of each process
(and its slope per hour), the checkpoint store's size, lag and trained offsets per partition,
predict goodput / p50 / p99 / shed rate / shed time-to-first-byte, the latency from a version's
publication to the first answer it gave, and the supervisor's restarts. At the end: each
partition's share of the trained advance against its share of the events (fairness), and, for
the events the final version covers, how many were lost or trained twice (the lineage audit).

``--overload X`` first measures the server's capacity (closed loop) and its unloaded latency
(a light open loop), then offers X times that capacity for the rest of the run, then measures
capacity again: goodput against capacity, p99 of successes against the unloaded p99, the shed
rate and shed answer times, and per phase the server's worker utilisation and rows per busy
second (:mod:`benchmarks.soak_overload`).

Usage: ``python -m benchmarks.soak --minutes 10 --events-per-s 60 --requests-per-s 20
[--kill trainer,server --kills 5 --kill-every 40] [--overload 2] [--quick]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    argument_parser,
    base_model_for,
    machine,
    wait_until,
    work_directory,
    write_result,
)
from benchmarks.soak_kills import Killer, kill_report, readiness_probes
from benchmarks.soak_load import EventProducer, PredictLoad
from benchmarks.soak_overload import ServerWork, after_overload, overload_phases, overload_ratios
from benchmarks.soak_probe import (
    bucket_quantile,
    directory_bytes,
    fairness,
    labelled,
    predict_stats,
    rss_mib,
    scrape,
    slope_per_hour,
    stack_processes,
    status_buckets,
    trained_offsets,
)
from benchmarks.soak_report import exactly_once, summary_table, swap_latencies
from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.evaluation.children import free_port

HOST = "127.0.0.1"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def stack_settings(work_dir: Path, base_model: str, args: Any) -> Settings:
    return Settings(
        _env_file=None,
        base_model=base_model,
        checkpoint_dir=work_dir / "store",
        broker_port=free_port(),
        http_port=free_port(),
        trainer_metrics_port=free_port(),
        supervisor_metrics_port=free_port(),
        events_topic_partitions=args.partitions,
        serve_max_queue_ms=args.max_queue_ms,
        publish_max_delay_ms=5000,
        # With kills the lineage audit needs every version; otherwise the default retention.
        keep_versions=1_000_000 if args.kill else Settings.model_fields["keep_versions"].default,
    )


def start_stack(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMTUNE_")}
    env |= settings.as_environment() | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        stack = subprocess.Popen([sys.executable, "-m", "streamtune.cli", "up"], env=env, stdout=out, stderr=out)
    wait_until(lambda: "streamtune is up" in log.read_text(errors="replace"), 300, "the stack to be up", 0.5)
    return stack


class Observer:
    """Samples the stack and the load every report interval."""

    def __init__(self, settings: Settings, stack: subprocess.Popen[bytes], load: PredictLoad, instances: int):
        self.settings, self.stack, self.load, self.instances = settings, stack, load, instances
        self.store = CheckpointStore(settings.checkpoint_dir)
        self.started = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self._seen = 0
        self.shed_buckets: dict[float, float] = {}
        self.ok_buckets: dict[float, float] = {}

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        outcomes = self.load.outcomes[self._seen :]
        window = now - (self.samples[-1]["_at"] if self.samples else self.started)
        self._seen += len(outcomes)
        trainer = scrape(f"http://{HOST}:{self.settings.trainer_metrics_port}/metrics")
        supervisor = scrape(f"http://{HOST}:{self.settings.supervisor_metrics_port}/metrics")
        server = scrape(f"http://{HOST}:{self.settings.http_port}/metrics")
        shed_buckets = status_buckets(server, "/v1/predict", "503") or self.shed_buckets
        ok_buckets = status_buckets(server, "/v1/predict", "200") or self.ok_buckets
        sample = {
            "_at": now,
            "t_s": round(now - self.started, 1),
            "rss_mib": rss_mib(stack_processes(self.stack.pid)),
            "store_mib": round(directory_bytes(self.settings.checkpoint_dir) / 2**20, 1),
            "lag": {int(k): int(v) for k, v in labelled(trainer, "streamtune_consumer_lag", "partition").items()},
            "trained_offsets": trained_offsets(self.store),
            "version": self.store.latest_version(),
            "predict": predict_stats(outcomes, window, self.instances),
            # The server's own time to answer a shed request (its histogram: a bucket bound).
            "server_shed_p99_at_most_ms": _ms(bucket_quantile(shed_buckets, self.shed_buckets, 0.99)),
            # ... and to answer a scored one: what of the client's p99 is the server's own.
            "server_ok_p99_at_most_ms": _ms(bucket_quantile(ok_buckets, self.ok_buckets, 0.99)),
            "restarts": labelled(supervisor, "streamtune_child_restarts_total", "child"),
        }
        self.samples.append(sample)
        self.shed_buckets, self.ok_buckets = shed_buckets, ok_buckets
        p = sample["predict"]
        print(
            f"[{sample['t_s']:7.1f} s] rss {sample['rss_mib']} MiB, store {sample['store_mib']} MiB, "
            f"v{sample['version']}, lag {sample['lag']}, trained {sample['trained_offsets']}, "
            f"predict ok {p['ok']}/{p['requests']} p50 {p['p50_ms']} p99 {p['p99_ms']} ms, shed {p['shed_rate']} "
            f"(ttfb p99 {p['shed_ttfb_p99_ms']} ms, server ≤ {sample['server_shed_p99_at_most_ms']} ms), "
            f"server's ok p99 ≤ {sample['server_ok_p99_at_most_ms']} ms, "
            f"5xx {p['status_5xx_not_shed']}, restarts {sample['restarts']}",
            flush=True,
        )
        return sample

    def memory_slopes(self) -> dict[str, float | None]:
        roles = {role for s in self.samples for role in s["rss_mib"]}
        return {
            role: slope_per_hour([(s["t_s"], s["rss_mib"][role]) for s in self.samples if role in s["rss_mib"]])
            for role in sorted(roles)
        }


def run(args: Any, work_dir: Path, base_model: str) -> dict[str, Any]:
    settings = stack_settings(work_dir, base_model, args)
    stack = start_stack(settings, work_dir / "up.log")
    producer = EventProducer(settings.bootstrap_servers, settings.events_topic, args.events_per_s, args.partitions)
    load = PredictLoad(HOST, settings.http_port, 0.0, instances=args.instances)
    observer = Observer(settings, stack, load, args.instances)
    killer = None
    try:
        producer.start()
        load.start()
        work = ServerWork(f"http://{HOST}:{settings.http_port}/metrics")
        phases = overload_phases(args, load, work) if args.overload else {}
        load.set_rate(args.requests_per_s)
        started, first = time.monotonic(), len(load.outcomes)
        if args.kill:
            names = args.kill.split(",")
            children = [names[i % len(names)] for i in range(args.kills)]
            killer = Killer(
                stack.pid,
                children,
                args.kill_every,
                readiness_probes(HOST, settings.http_port, settings.trainer_metrics_port),
            )
            killer.start()
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            time.sleep(min(args.report_every, args.minutes * 60 - elapsed))
            observer.sample()
        if args.overload:
            phases["overloaded"] = predict_stats(load.outcomes[first:], time.monotonic() - started, args.instances)
            after_overload(phases, load, work, args)
        final = wind_down(args, load, producer, killer, observer)
    finally:
        load.halt.set()
        producer.halt.set()
        stack.terminate()
        try:
            stack.wait(90)
        except subprocess.TimeoutExpired:
            stack.kill()
    swaps = swap_latencies(observer.store, load)
    result = {
        "settings": {key: value for key, value in vars(args).items() if key != "out"} | {"base_model": base_model},
        "samples": [{k: v for k, v in s.items() if k != "_at"} for s in observer.samples],
        "memory_slope_mib_per_hour": observer.memory_slopes(),
        "fairness_over_run": fairness(final["trained_offsets"], dict(producer.produced)),
        "produced_per_partition": dict(producer.produced),
        "predict_whole_run": predict_stats(load.outcomes, time.monotonic() - observer.started, args.instances),
        "swap_latency_s": [latency for _, latency in swaps],
        "server_shed_p99_at_most_ms": _ms(bucket_quantile(observer.shed_buckets, {}, 0.99)),
        "restarts": final["restarts"],
        "kills": kill_report(killer.kills, load.outcomes) if killer else [],
        "exactly_once": exactly_once(observer.store, producer, args.partitions, settings.holdout_share),
        "stack_exit_status": stack.returncode,
    }
    if phases:
        result["overload"] = (
            phases
            | overload_ratios(phases)
            | {
                "swap_latency_unloaded_s": [latency for seen, latency in swaps if seen < started],
                "swap_latency_overloaded_s": [latency for seen, latency in swaps if seen >= started],
            }
        )
    return result


def wind_down(
    args: Any, load: PredictLoad, producer: EventProducer, killer: Killer | None, observer: Observer
) -> dict[str, Any]:
    """Stop the load and the kills, let the trainer drain (``--drain-s``), take the last sample."""
    load.set_rate(0)
    producer.halt.set()
    producer.join(60)
    if killer is not None:
        killer.halt.set()
        killer.join(130)
    if args.drain_s:
        produced = dict(producer.produced)
        try:
            wait_until(lambda: trained_offsets(observer.store) == produced, args.drain_s, "the backlog drained", 1)
        except TimeoutError:
            print(f"backlog not drained within {args.drain_s} s", flush=True)
    return observer.sample()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], "soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--events-per-s", type=float, default=40.0)
    parser.add_argument("--requests-per-s", type=float, default=20.0)
    parser.add_argument("--instances", type=int, default=4, help="instances per predict request")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--report-every", type=float, default=30.0)
    parser.add_argument("--max-queue-ms", type=float, default=300.0, help="STREAMTUNE_SERVE_MAX_QUEUE_MS")
    parser.add_argument("--kill", default="", help="children to SIGKILL in turn, e.g. trainer,server")
    parser.add_argument("--kills", type=int, default=0)
    parser.add_argument("--kill-every", type=float, default=40.0)
    parser.add_argument("--overload", type=float, default=0.0, help="offer this multiple of the measured capacity")
    parser.add_argument("--phase-s", type=float, default=30.0, help="seconds of the capacity and unloaded phases")
    parser.add_argument("--drain-s", type=float, default=0.0, help="after the load, wait this long for the backlog")
    args = parser.parse_args(argv)
    started_machine = machine()
    with work_directory("soak") as work_dir:
        result = run(args, work_dir, base_model_for(args, work_dir))
    write_result(args.out, "soak", started_machine, result, summary_table(result))
    return result


if __name__ == "__main__":
    main()
