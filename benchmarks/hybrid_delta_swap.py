"""Hybrid delta benchmark: a delta of 1,000 touched rows, from publish to served.

A real ``streamtune serve`` child (``STREAMTUNE_MODEL_KIND=hybrid``) follows a store holding a
hybrid snapshot of ``--users`` user rows and ``--items`` item rows (tables of the trainer's
default budget). Each round changes 1,000 rows (half users, half items, some of them new keys)
and the dense part, then times:

1. **publish**: the delta's files written through the store (temporary directory, fsync,
   rename, LATEST) and the announcement flushed to the models topic, as the trainer does;
2. **announcement → served**: until ``/v1/model`` (polled every ``POLL_INTERVAL_S``) names the
   new version: the server verifies the delta's hashes, brings its spare tables up to date
   (double buffering, :mod:`streamtune.inference.delta_chain`), applies the delta, warms up and
   swaps; beside it the server's own ``streamtune_model_swap_seconds``;

and the same for a **full snapshot** of the same tables, the baseline a delta has to beat.
Deltas are published one after another, each on the previous one, as the trainer does.
Medians over the rounds. Target (issue 14): publish → served <= 150 ms for the delta.

Run from the repository root: ``python -m benchmarks.hybrid_delta_swap [--quick] [--repeats N]``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from confluent_kafka import Producer

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
from benchmarks.prometheus import Scrape, delta_mean
from streamtune.checkpoints import CheckpointStore
from streamtune.evaluation.children import ChildService
from streamtune.evaluation.server_client import ServerClient
from streamtune.kafka.clients import ensure_topics, make_producer
from streamtune.modeling.hybrid import HybridConfig, HybridModel
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder
from streamtune.modeling.hybrid.versions import export_delta, export_snapshot
from streamtune.testing.hybrid_store import publish_hybrid

NAME = "hybrid_delta_swap"
POLL_INTERVAL_S = 0.005
TOUCHED_ROWS = 1_000
KEY = "benchmark pseudonymisation key, 32 characters"


def filled_model(base_model: str, users: int, items: int) -> HybridModel:
    """A model of the default row budget with ``users`` and ``items`` keys holding rows."""
    encoder = SentenceEncoder(base_model)
    model = HybridModel(HybridConfig(text_dim=encoder.dim), TextEmbedder(encoder))
    for space, count in (("users", users), ("items", items)):
        for row in range(count):
            model.mappings[space].assign(f"{space}-{row}", row)
        model.tables[space].weights[:count] = torch.randn(count, model.tables[space].weights.shape[1]) * 0.1
        model.tables[space].counts[:count, :2] = torch.randint(1, 50, (count, 2)).double()
    return model


def touch(model: HybridModel, round_: int, rows: int = TOUCHED_ROWS) -> None:
    """Change ``rows`` rows, half per table (a tenth of them given to new keys), and the dense part."""
    generator = torch.Generator().manual_seed(round_)
    for space in ("users", "items"):
        mapping, table = model.mappings[space], model.tables[space]
        chosen = torch.randperm(len(mapping), generator=generator)[: rows // 2]
        for position, row in enumerate(chosen.tolist()[: rows // 20]):  # new keys take some rows over
            mapping.assign(f"{space}-new-{round_}-{position}", row)
        table.weights[chosen] += torch.randn(len(chosen), table.weights.shape[1], generator=generator) * 0.01
        table.counts[chosen, 0] += 1
        table.mark_dirty(chosen)
    with torch.no_grad():
        for parameter in model.scorer.parameters():
            parameter.add_(torch.randn_like(parameter) * 1e-3)


@dataclass(frozen=True)
class Publishing:
    """Where versions go and how the server is asked what it serves."""

    store: CheckpointStore
    producer: Producer
    topic: str
    client: ServerClient


def publish_and_serve(kind: str, model: HybridModel, to: Publishing) -> dict[str, Any]:
    """Publish one version of ``kind`` (delta or snapshot) and time it until it is served."""
    version_dict = export_delta(model) if kind == "delta" else export_snapshot(model)
    client = to.client
    started = time.perf_counter()
    manifest = publish_hybrid(to.store, version_dict, encoder=str(model.embedder.version))
    to.producer.produce(to.topic, key=str(manifest.version).encode(), value=manifest.to_json())
    to.producer.flush(10)
    announced = time.perf_counter()
    wait_until(
        lambda: (served := client.model()) and served[0] == manifest.version,
        120,
        f"the server to serve version {manifest.version}",
        interval_s=POLL_INTERVAL_S,
    )
    served = time.perf_counter()
    return {
        "publish_s": announced - started,
        "announcement_to_served_s": served - announced,
        "publish_to_served_s": served - started,
        "version_bytes": sum(entry.bytes for entry in manifest.files.values()),
        "rows": int(version_dict["users"]["rows"].numel() + version_dict["items"]["rows"].numel()),
    }


def measure(bootstrap: str, work_dir: Path, base_model: str, sizes: tuple[int, int], rounds: int) -> dict[str, Any]:
    settings = benchmark_settings(
        bootstrap, work_dir, base_model, model_kind="hybrid", pseudonymise_key=KEY, store_poll_seconds=30.0
    )
    ensure_topics(settings, [(settings.models_topic, 1)])
    store = CheckpointStore(settings.checkpoint_dir, keep_versions=1_000)
    model = filled_model(base_model, *sizes)
    server = ChildService("server-hybrid", "serve", settings, work_dir, threads=1)
    try:
        client = ServerClient(settings.http_port, timeout_s=30)
        client.wait_for_model(lambda version, _: True, 300, "the server to start", server.check_alive)
        to = Publishing(store, make_producer(settings), settings.models_topic, client)
        publish_and_serve("snapshot", model, to)  # the first load also warms the server's encoder
        runs: dict[str, list[dict]] = {"delta": [], "snapshot": []}
        url = f"http://{settings.http_host}:{settings.http_port}/metrics"
        swap_s = {}
        for kind in ("delta", "snapshot"):  # deltas in a row, as the trainer publishes them
            before = Scrape.of(url)
            for round_ in range(rounds):
                touch(model, round_ if kind == "delta" else 1_000 + round_)
                runs[kind].append(publish_and_serve(kind, model, to))
            swap_s[kind] = delta_mean(before, Scrape.of(url), "streamtune_model_swap_seconds")
    finally:
        server.stop()
    return {
        kind: {key: median([run[key] for run in values]) for key in values[0]}
        | {"server_swap_mean_s": swap_s[kind], "runs": values}
        for kind, values in runs.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argument_parser(__doc__.splitlines()[0], NAME)
    parser.add_argument("--users", type=int, default=None, help="user rows held (default 50,000; --quick 5,000)")
    parser.add_argument("--items", type=int, default=None, help="item rows held (default 10,000; --quick 2,000)")
    args = parser.parse_args(argv)
    rounds = args.repeats or (2 if args.quick else 7)
    users = args.users or (5_000 if args.quick else 50_000)
    items = args.items or (2_000 if args.quick else 10_000)
    started_machine = machine()
    with work_directory(NAME) as work_dir, embedded_broker(work_dir) as bootstrap:
        base_model = base_model_for(args, work_dir)
        results = measure(bootstrap, work_dir, base_model, (users, items), rounds)
    delta, snapshot = results["delta"], results["snapshot"]
    rows = [
        (
            kind,
            values["rows"],
            round(values["version_bytes"] / 2**20, 2),
            round(values["publish_s"] * 1000, 1),
            round(values["announcement_to_served_s"] * 1000, 1),
            round(values["publish_to_served_s"] * 1000, 1),
            None if values["server_swap_mean_s"] is None else round(values["server_swap_mean_s"] * 1000, 1),
        )
        for kind, values in (("delta", delta), ("snapshot", snapshot))
    ]
    table = format_table(
        ("version", "rows", "MiB", "publish ms", "announce→served ms", "publish→served ms", "server swap ms"), rows
    )
    ratio = delta["publish_to_served_s"] / snapshot["publish_to_served_s"]
    table += (
        f"\n\nmedians over {rounds} rounds; {users:,} user and {items:,} item rows held; "
        f"delta / snapshot publish→served: {ratio:.2f}; target for the delta: <= 150 ms; "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    payload = {
        "settings": {"users": users, "items": items, "rounds": rounds, "touched_rows": TOUCHED_ROWS},
        "results": results,
        "delta_vs_snapshot": ratio,
    }
    write_result(args.out, NAME, started_machine, payload, table)
    return payload


if __name__ == "__main__":
    main()
