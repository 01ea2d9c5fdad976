"""Serving benchmark, hybrid family: known (user, item) pairs against the naive text server.

For a known item the hybrid model's prediction is two row lookups, a cached text vector and a
small MLP, so what a request costs is the HTTP path itself. In one run, against real servers on
loopback (child processes): ``streamtune serve`` with ``STREAMTUNE_MODEL_KIND=hybrid`` serving a
snapshot learned from a synthetic stream, and the naive server of ``benchmarks/serving.py`` (one
MiniLM forward per request, both thread variants; the better is the baseline) answering the same
request bodies from their text. Concurrency 32, closed loop, one instance per request, every
(user, item) pair known and every item text already embedded (one warm pass before measuring);
the servers are measured in turns, the order reversed on every other repeat, medians reported.

Run from the repository root: ``python -m benchmarks.serving_hybrid [--repeats 3] [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import httpx

from benchmarks.harness import RESULTS_DIR, embedded_broker, free_port, machine, work_directory, write_result
from benchmarks.serving import (
    ADMIT_EVERYTHING,
    GENRES,
    NAIVE_VARIANTS,
    WORDS,
    ClosedLoad,
    LoadTarget,
    ServerCommand,
    children,
    measure,
    median_of,
)
from streamtune.checkpoints import CheckpointStore
from streamtune.modeling.base import resolve_base_model
from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder
from streamtune.modeling.hybrid.versions import export_snapshot
from streamtune.privacy.pseudonyms import Pseudonymiser
from streamtune.testing.hybrid_store import publish_hybrid

KEY = "benchmark pseudonymisation key, 32 bytes+"
CONCURRENCY = 32
USERS, ITEMS, EVENTS = 200, 100, 3000


def catalogue(seed: int = 0) -> list[str]:
    """Item texts of 8–40 words, as in ``benchmarks/serving.py``."""
    rng = random.Random(seed)
    return [f"title {item}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) for item in range(ITEMS)]


def events(texts: list[str], seed: int = 1) -> list[dict]:
    """Labelled events: a user likes the items whose genre matches the user's taste."""
    rng, pseudonymiser = random.Random(seed), Pseudonymiser(KEY.encode())
    stream = []
    for position in range(EVENTS):
        user, item = rng.randrange(USERS), rng.randrange(ITEMS)
        stream.append(
            {
                "user_id": pseudonymiser.pseudonym(str(user)),
                "item_id": f"i{item}",
                "text": texts[item],
                "context": "",
                "ts": position,
                "label": int(user % 2 == item % 2),
            }
        )
    return stream


def publish_snapshot(store: CheckpointStore, base_model: str, texts: list[str]) -> None:
    encoder = SentenceEncoder(base_model)
    config = HybridConfig(text_dim=encoder.dim, user_rows=4 * USERS, item_rows=4 * ITEMS)
    learner = HybridLearner(HybridModel(config, TextEmbedder(encoder)))
    learner.learn(events(texts))
    publish_hybrid(store, export_snapshot(learner.model))


def payloads(texts: list[str], count: int = 512, seed: int = 2) -> list[bytes]:
    """Bodies of one known (user, item) instance each; the naive server reads only the text."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        item = rng.randrange(ITEMS)
        instance = {"user_id": str(rng.randrange(USERS)), "item_id": f"i{item}", "text": texts[item]}
        instance["context"] = "likes " + ", ".join(rng.sample(GENRES, 3))
        bodies.append(json.dumps({"instances": [instance]}).encode())
    return bodies


def warm(port: int, bodies: list[bytes]) -> bool:
    """Send every body once (the server embeds each item text the first time); True if every
    answer came from known ids."""
    known = True
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for body in bodies:
            answer = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
            answer.raise_for_status()
            prediction = answer.json()["predictions"][0]
            known = known and prediction.get("user_known", False) and prediction.get("item_known", False)
    return known


def bench(base_model: str, workdir: Path, bootstrap: str, args: argparse.Namespace) -> dict:
    store = CheckpointStore(workdir / "checkpoints")
    texts = catalogue()
    publish_snapshot(store, base_model, texts)
    bodies = payloads(texts)
    ports = {server: free_port() for server in ("streamtune-hybrid", *NAIVE_VARIANTS)}
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "STREAMTUNE_BASE_MODEL": base_model,
        "STREAMTUNE_CHECKPOINT_DIR": str(store.root),
        "STREAMTUNE_HTTP_PORT": str(ports["streamtune-hybrid"]),
        "STREAMTUNE_DEVICE": "cpu",
        "STREAMTUNE_MODEL_KIND": "hybrid",
        "STREAMTUNE_PSEUDONYMISE_KEY": KEY,
        "STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMTUNE_MODELS_TOPIC": "bench-models-hybrid",
        **ADMIT_EVERYTHING,
    }
    serve = [sys.executable, "-m", "streamtune.cli", "--log-level", "warning", "serve"]
    commands = {"streamtune-hybrid": (serve, env)}
    for variant, extra_env in NAIVE_VARIANTS.items():
        naive = [
            sys.executable,
            "-m",
            "benchmarks.naive_server",
            base_model,
            str(ports[variant]),
            "--max-length",
            "128",
        ]
        commands[variant] = (naive, env | extra_env)
    runs: dict[str, list[dict]] = {server: [] for server in ports}
    servers = {
        server: ServerCommand(command, server_env, ports[server], workdir / f"{server}.log")
        for server, (command, server_env) in commands.items()
    }
    with children(servers) as processes:
        pids = {server: process.pid for server, process in processes.items()}
        all_known = warm(ports["streamtune-hybrid"], bodies)
        for repeat in range(args.repeats):
            for server in list(ports) if repeat % 2 == 0 else list(ports)[::-1]:
                run = measure(LoadTarget(ports[server], pids[server]), ClosedLoad(CONCURRENCY, args.seconds), bodies)
                runs[server].append(run)
                print(f"  {server:<17} c={CONCURRENCY} {run['throughput_rps']:8.1f} req/s", flush=True)
    result: dict = {server: median_of(server_runs) for server, server_runs in runs.items()}
    baseline = max(NAIVE_VARIANTS, key=lambda variant: result[variant]["throughput_rps"])
    hybrid = result["streamtune-hybrid"]
    result["all_pairs_known"] = all_known
    result["ratios"] = {
        "baseline": baseline,
        "throughput_vs_naive_c32": hybrid["throughput_rps"] / result[baseline]["throughput_rps"],
        "p99_vs_naive_c32": hybrid["p99_ms"] / result[baseline]["p99_ms"],
        "cpu_per_request_naive_vs_hybrid_c32": result[baseline]["cpu_ms_per_request"] / hybrid["cpu_ms_per_request"],
    }
    return result


def table(result: dict) -> str:
    lines = [f"{'server (c=32)':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU ms/req':>10}"]
    for server in ("streamtune-hybrid", *NAIVE_VARIANTS):
        row = result[server]
        lines.append(
            f"{server:<18} {row['throughput_rps']:>8.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
            f"{row['errors']:>6} {row['cpu_ms_per_request']:>10.2f}"
        )
    ratios = result["ratios"]
    lines.append(
        f"hybrid, known pairs (all known: {result['all_pairs_known']}) vs {ratios['baseline']}: throughput "
        f"{ratios['throughput_vs_naive_c32']:.1f}x (goal >= 20), p99 {ratios['p99_vs_naive_c32']:.2f}, "
        f"CPU per request {ratios['cpu_per_request_naive_vs_hybrid_c32']:.1f}x less"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "serving_hybrid.json")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="one short run (checks the benchmark works)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 1.0, 1
    started, started_machine = time.perf_counter(), machine()
    with work_directory("serving-hybrid") as workdir, embedded_broker(workdir) as bootstrap:
        result = bench(resolve_base_model(None), workdir, bootstrap, args)
    settings = {"concurrency": CONCURRENCY, "seconds": args.seconds, "repeats": args.repeats}
    payload = {"settings": settings, "result": result, "elapsed_s": round(time.perf_counter() - started)}
    write_result(args.out, "serving_hybrid", started_machine, payload, table(result))
    return payload


if __name__ == "__main__":
    main()
