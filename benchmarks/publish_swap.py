"""Publish and swap benchmark: writing a version, and the time until a server serves it.

For LoRA and full fine-tuning of the same base model, ``--versions`` times each:

1. **snapshot**: :func:`~streamtune.modeling.weights.trainable_state`, the copy of the weights
   the training thread makes before it can go on (on a GPU this is the device-to-host copy);
2. **publish**: :meth:`~streamtune.trainer.versions.publisher.VersionPublisher.publish` with a draft like
   the trainer's (weights, the ids of a batch, a full deduplication window and holdout window):
   producer flush, temporary directory, fsync, rename, LATEST, announcement;
3. **announcement → served**: from the moment ``publish`` returned (the announcement is sent)
   to the first poll (every ``POLL_INTERVAL_S``) at which a real ``streamtune serve`` child,
   following the store through the models topic, answers with the new version; next to it the
   server's own ``streamtune_model_swap_seconds`` (verify, build, warm up, swap);

and the size of each version on disk. Medians over the versions.

Run from the repository root: ``python -m benchmarks.publish_swap [--quick] [--versions N]``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from benchmarks.prometheus import Scrape, delta_count, delta_mean
from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.evaluation.children import ChildService
from streamtune.evaluation.server_client import ServerClient
from streamtune.kafka.clients import ensure_topics, make_producer
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.base import TuningSpec, load_base_model, wrap_for_tuning
from streamtune.modeling.weights import trainable_state, weights_file
from streamtune.testing.weights_export import WeightsExport
from streamtune.trainer.versions.files import VersionEvents
from streamtune.trainer.versions.publisher import KafkaSide, VersionDraft, VersionPublisher

NAME = "publish_swap"
POLL_INTERVAL_S = 0.01
MODES = ("lora", "full")


def stream_state(settings: Settings) -> dict[str, np.ndarray]:
    """Arrays the size of a busy trainer's: a full dedupe window and a full holdout window."""
    rows, width = settings.holdout_window, settings.max_length
    rng = np.random.default_rng(0)
    return {
        "recent_ids": rng.integers(0, 2**63, settings.dedupe_window, dtype=np.uint64),
        "holdout.ids": rng.integers(0, 30_000, (rows, width), dtype=np.uint16),
        "holdout.types": np.zeros((rows, width), dtype=np.uint8),
        "holdout.lengths": np.full(rows, width, dtype=np.int32),
        "holdout.labels": rng.integers(0, 2, rows).astype(np.float32),
    }


def publish_versions(settings: Settings, spec: TuningSpec, count: int, client: ServerClient, server_url: str) -> dict:
    torch.manual_seed(0)
    model = wrap_for_tuning(load_base_model(settings.base_model), spec)
    store = CheckpointStore(settings.checkpoint_dir, settings.keep_versions)
    kafka = KafkaSide(make_producer(settings), settings.models_topic, lambda offsets: None)
    export = WeightsExport(settings.base_model, spec, settings.max_length)
    publisher = VersionPublisher(store, kafka, export, TrainerMetrics())
    state_arrays = stream_state(settings)
    snapshot_s, publish_s, served_s, sizes = [], [], [], []
    before = Scrape.of(server_url)
    parent = None
    for index in range(count):
        with torch.no_grad():  # a different version each time, as after a training step
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn_like(parameter) * 1e-3)
        started = time.perf_counter()
        state = trainable_state(model, spec.tuning)
        snapshot_s.append(time.perf_counter() - started)
        draft = VersionDraft(
            snapshot=state,
            parent_version=parent,
            kafka_offsets={f"{settings.events_topic}:0": 32 * (index + 1)},
            examples_seen=32 * (index + 1),
            examples_in_version=32,
            last_train_loss=0.5,
            data_watermark_ms=int(time.time() * 1000),
            produced_watermark_ms=int(time.time() * 1000),
            events=VersionEvents(trained=[f"bench-{index}-{row}" for row in range(32)]),
            stream_state=state_arrays,
        )
        started = time.perf_counter()
        manifest = publisher.publish(draft)
        announced = time.perf_counter()
        publish_s.append(announced - started)
        sizes.append(sum(entry.bytes for entry in manifest.files.values()))
        wait_until(
            lambda version=manifest.version: (served := client.model()) and served[0] == version,
            120,
            f"the server to serve version {manifest.version}",
            interval_s=POLL_INTERVAL_S,
        )
        served_s.append(time.perf_counter() - announced)
        parent = manifest.version
    after = Scrape.of(server_url)
    return {
        "versions": count,
        "snapshot_s": median(snapshot_s),
        "publish_s": median(publish_s),
        "announcement_to_served_s": median(served_s),
        "server_swap_mean_s": delta_mean(before, after, "streamtune_model_swap_seconds"),
        "server_swaps": delta_count(before, after, "streamtune_model_swaps_total"),
        "version_bytes": median(sizes),
        "weights_bytes": store.read_manifest(parent).files[weights_file(spec.tuning)].bytes,
        "runs": {"snapshot_s": snapshot_s, "publish_s": publish_s, "announcement_to_served_s": served_s},
    }


def measure_mode(bootstrap: str, work_dir: Path, base_model: str, tuning: str, count: int) -> dict[str, Any]:
    settings = benchmark_settings(bootstrap, work_dir, base_model, tuning=tuning)
    ensure_topics(settings, [(settings.models_topic, 1)])
    server = ChildService(f"server-{tuning}", "serve", settings, work_dir, threads=1)
    try:
        client = ServerClient(settings.http_port, timeout_s=30)
        client.wait_for_model(lambda version, _: True, 300, "the server to load the base model", server.check_alive)
        url = f"http://{settings.http_host}:{settings.http_port}/metrics"
        return publish_versions(settings, TuningSpec(tuning=tuning), count, client, url)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--versions", type=int, default=None, help="versions per mode (default 6; --quick 2)")
    args = parser.parse_args(argv)
    count = args.versions or args.repeats or (2 if args.quick else 6)
    started_machine = machine()
    results = {}
    with work_directory(NAME) as work_dir, embedded_broker(work_dir) as bootstrap:
        base_model = base_model_for(args, work_dir)
        for tuning in MODES:
            results[tuning] = measure_mode(bootstrap, work_dir, base_model, tuning, count)
            print(f"  {tuning}: {results[tuning]['publish_s'] * 1000:.0f} ms to publish", flush=True)

    rows = [
        (
            tuning,
            round(result["snapshot_s"] * 1000, 1),
            round(result["publish_s"] * 1000, 1),
            round(result["announcement_to_served_s"] * 1000, 1),
            None if result["server_swap_mean_s"] is None else round(result["server_swap_mean_s"] * 1000, 1),
            round(result["weights_bytes"] / 2**20, 2),
            round(result["version_bytes"] / 2**20, 2),
        )
        for tuning, result in results.items()
    ]
    table = format_table(
        ("tuning", "snapshot ms", "publish ms", "announce→served ms", "server swap ms", "weights MiB", "version MiB"),
        rows,
    )
    table += f"\n\nmedians over {count} versions each; served time polled every {POLL_INTERVAL_S * 1000:.0f} ms"
    payload = {
        "settings": {"versions": count, "base_model": base_model, "poll_interval_s": POLL_INTERVAL_S},
        "results": results,
    }
    write_result(args.out, NAME, started_machine, payload, table)
    return payload


if __name__ == "__main__":
    main()
