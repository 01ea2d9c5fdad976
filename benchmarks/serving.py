"""Serving benchmark: streamtune's inference server against a naive one, steady and under swaps.

In one run, against real servers on loopback (each a child process):

1. streamtune (``streamtune serve``, dynamic batching): throughput and p50/p99 latency of
   ``/v1/predict`` with one instance per request, at concurrency 1, 8 and 32, on each forward
   backend (torch with its linears on oneDNN, torch's stock fp32 path, torch int8, ONNX Runtime,
   ONNX int8), with each backend's score difference to stock torch on the reference set it was
   accepted on;
2. the same load at concurrency 32 while the served version changes every 2 s — two published
   versions pinned alternately through the admin API, so no trainer load confounds the figure:
   errors (non-200, or a version incoherent with the body), p99 of the whole run and of the
   requests in flight during a swap, swap time and swap memory (from the server's metrics);
3. the naive baseline (``benchmarks/naive_server.py``: FastAPI, one forward per request) under
   the load of 1, as written and with one torch thread (the better of the two is the baseline).

Ratios: streamtune/naive throughput at concurrency 32 (goal ≥ 3, p99 not worse), p99 with swaps
/ steady p99 (goal ≤ 1.1), errors (goal 0). Each figure is the median of repeated runs, warm-up
excluded; the servers run side by side and are measured in turns, so that background load on a
shared machine hits them alike. Versions come from two real LoRA training steps each on
synthetic events. Headline figures use the real all-MiniLM-L6-v2 on CPU; the tiny random BERT of
the tests is measured too (there the HTTP stack, not the model, is the cost).

Run from the repository root: ``python -m benchmarks.serving [--out PATH] [--models minilm,tiny]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import torch

from benchmarks.harness import RESULTS_DIR, embedded_broker, free_port, machine, work_directory, write_result
from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, resolve_base_model, wrap_for_tuning
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.weights import save_state, trainable_state

ADMIN_TOKEN = "benchmark-admin-token-0123456789"
CONCURRENCIES = (1, 8, 32)
SWAP_CONCURRENCY = 32
SWAP_EVERY_S = 2.0
WARMUP_S = 1.0  # of load before each measured window, excluded
# The naive server as written (FastAPI runs the endpoint in its thread pool; torch's default
# threads), and the same with one torch thread per forward, which avoids OpenMP thread teams
# contending for two cores when many pool threads run forwards at once.
NAIVE_VARIANTS = {"naive": {}, "naive-1thread": {"OMP_NUM_THREADS": "1"}}
# streamtune with each forward-pass backend (see streamtune.inference.backends); the first is
# the text path's headline (torch) and the one measured under swaps.
STREAMTUNE_VARIANTS = {
    "streamtune": {"STREAMTUNE_SERVE_BACKEND": "torch"},
    "streamtune-stock": {"STREAMTUNE_SERVE_BACKEND": "torch", "STREAMTUNE_SERVE_CPU_LINEAR": "stock"},
    "streamtune-int8": {"STREAMTUNE_SERVE_QUANTIZE": "int8"},
    "streamtune-onnx": {"STREAMTUNE_SERVE_BACKEND": "onnx"},
    "streamtune-onnx-int8": {"STREAMTUNE_SERVE_BACKEND": "onnx", "STREAMTUNE_SERVE_QUANTIZE": "int8"},
}
# A closed loop of 32 clients can never queue more than 32 rows, so admission control has
# nothing to protect here; left on, it would refuse most of the load (all clients share one
# address, hence one client share) and measure refusals instead of scoring.
ADMIT_EVERYTHING = {
    "STREAMTUNE_SERVE_MAX_QUEUE_MS": "600000",
    "STREAMTUNE_SERVE_CLIENT_SHARE": "1",
    "STREAMTUNE_SERVE_DEFAULT_DEADLINE_MS": "600000",
}
MAX_LENGTH = 128
WORDS = (
    *("film", "story", "love", "war", "space", "detective", "family", "comedy", "drama", "night"),
    *("city", "music", "road", "dream", "ghost", "king", "robot", "island", "winter", "summer"),
    *("secret", "journey", "friend", "enemy", "heart", "machine", "river", "fire", "ocean"),
)
GENRES = ("drama", "comedy", "thriller", "romance", "sci-fi", "horror", "documentary", "animation")


# --- load generation ---------------------------------------------------------------------------
class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client. The load generator shares two cores with the server
    under test; a full client library spends more CPU per request than the server does."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", token: str | None = None
    ) -> tuple[int, dict, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{auth}\r\n"
        )
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readline()
        headers = {}
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = await self._reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection") == "close":
            self.close()
        return int(status_line.split()[1]), headers, payload

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass(frozen=True)
class Sample:
    start: float
    end: float
    ok: bool


@dataclass(frozen=True)
class LoadTarget:
    """The server under load: its port, its process (for the CPU time it spends; None: not
    measured) and the versions its answers may come from (None: any)."""

    port: int
    pid: int | None = None
    versions: set[int] | None = None


@dataclass(frozen=True)
class ClosedLoad:
    """``concurrency`` clients each sending the next request as soon as the last is answered,
    measured for ``seconds`` after ``warmup_s`` of load that is not."""

    concurrency: int
    seconds: float
    warmup_s: float = WARMUP_S


@dataclass(frozen=True)
class BenchPlan:
    """How each model is measured: seconds per run, runs per figure (the median is reported),
    seconds per run with swaps, and the streamtune variants measured besides the default."""

    seconds: float
    repeats: int
    swap_seconds: float
    variants: tuple[str, ...] = tuple(STREAMTUNE_VARIANTS)


def payloads(count: int, seed: int = 0) -> list[bytes]:
    """Request bodies of one instance each: item texts of 8–40 words, a genre context."""
    rng = random.Random(seed)
    bodies = []
    for index in range(count):
        text = f"title {index}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        context = "likes " + ", ".join(rng.sample(GENRES, 3))
        bodies.append(json.dumps({"instances": [{"text": text, "context": context}]}).encode())
    return bodies


def coherent(headers: dict, payload: bytes, versions: set[int] | None) -> bool:
    """The body's version is the header's, a version we published, with one score in [0, 1]."""
    if versions is None:
        return True
    body = json.loads(payload)
    version = body["model_version"]
    scores = [p["score"] for p in body["predictions"]]
    return (
        headers.get("x-model-version") == str(version)
        and version in versions
        and len(scores) == 1
        and 0.0 <= scores[0] <= 1.0
    )


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    target: LoadTarget, load: ClosedLoad, bodies: list[bytes]
) -> tuple[list[Sample], float, float, float | None]:
    """``load`` on ``target``: the samples that started after the warm-up, the measured window,
    and the CPU seconds the server's process used in it. On a machine shared with other work
    the CPU per request is the steadier figure: wall-clock throughput also depends on how many
    threads a server runs, since the scheduler shares the cores out by thread."""
    port, pid, versions = target.port, target.pid, target.versions
    concurrency, seconds, warmup_s = load.concurrency, load.seconds, load.warmup_s
    samples: list[Sample] = []
    started = time.perf_counter()
    measure_from, stop_at = started + warmup_s, started + warmup_s + seconds
    cpu_from: list[float] = []

    async def cpu_meter() -> None:
        await asyncio.sleep(warmup_s)
        if pid is not None:
            cpu_from.append(process_cpu_s(pid))

    async def client(index: int) -> None:
        connection = HttpConnection(port)
        sent = index
        while (now := time.perf_counter()) < stop_at:
            body = bodies[sent % len(bodies)]
            sent += concurrency
            try:
                status, headers, payload = await connection.request("POST", "/v1/predict", body)
                ok = status == 200 and coherent(headers, payload, versions)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                connection.close()
                ok = False
            if now >= measure_from:
                samples.append(Sample(now, time.perf_counter(), ok))
        connection.close()

    await asyncio.gather(cpu_meter(), *(client(index) for index in range(concurrency)))
    cpu = process_cpu_s(pid) - cpu_from[0] if pid is not None else None
    return samples, measure_from, stop_at, cpu


def summarize(samples: list[Sample], window_s: float, cpu_s: float | None = None) -> dict:
    latencies = np.array([s.end - s.start for s in samples if s.ok]) * 1000
    succeeded = sum(s.ok for s in samples)
    return {
        "cpu_ms_per_request": cpu_s * 1000 / succeeded if cpu_s is not None and succeeded else None,
        "requests": len(samples),
        "errors": sum(not s.ok for s in samples),
        "throughput_rps": sum(s.ok for s in samples) / window_s,
        "p50_ms": float(np.percentile(latencies, 50)) if latencies.size else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies.size else None,
    }


def median_of(runs: list[dict]) -> dict:
    keys = ("throughput_rps", "p50_ms", "p99_ms", "cpu_ms_per_request")
    merged = {}
    for key in keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        merged[key] = statistics.median(values) if values else None
    merged["errors"] = sum(run["errors"] for run in runs)
    merged["requests"] = sum(run["requests"] for run in runs)
    merged["runs"] = runs
    return merged


def measure(target: LoadTarget, load: ClosedLoad, bodies: list[bytes]) -> dict:
    samples, begin, end, cpu = asyncio.run(closed_loop(target, load, bodies))
    return summarize(samples, end - begin, cpu)


async def load_with_swaps(port: int, bodies: list[bytes], pins: list[int], seconds: float) -> dict:
    """Closed-loop load while another client pins ``pins`` alternately every SWAP_EVERY_S."""
    swaps: list[tuple[float, float, int]] = []

    async def swapper() -> None:
        connection = HttpConnection(port)
        await asyncio.sleep(WARMUP_S + SWAP_EVERY_S / 2)
        index = 0
        while time.perf_counter() < deadline - SWAP_EVERY_S / 2:
            version = pins[index % len(pins)]
            index += 1
            begin = time.perf_counter()
            status, _, _ = await connection.request(
                "POST", "/v1/admin/pin", json.dumps({"version": version}).encode(), ADMIN_TOKEN
            )
            swaps.append((begin, time.perf_counter(), status))
            await asyncio.sleep(max(0.0, begin + SWAP_EVERY_S - time.perf_counter()))
        connection.close()

    deadline = time.perf_counter() + WARMUP_S + seconds
    (samples, begin, end, _), _ = await asyncio.gather(
        closed_loop(LoadTarget(port, versions=set(pins)), ClosedLoad(SWAP_CONCURRENCY, seconds), bodies), swapper()
    )
    during = [s for s in samples if any(s.start <= stop and s.end >= start for start, stop, _ in swaps)]
    result = summarize(samples, end - begin)
    result["swaps"] = len(swaps)
    result["swap_errors"] = sum(status != 200 for _, _, status in swaps)
    result["pin_call_ms_median"] = (
        statistics.median((stop - start) * 1000 for start, stop, _ in swaps) if swaps else None
    )
    result["during_swap"] = summarize(during, sum(stop - start for start, stop, _ in swaps) or 1.0)
    return result


# --- servers and versions ----------------------------------------------------------------------
@dataclass(frozen=True)
class ServerCommand:
    """How to start one server child: its command line, environment, port and log file."""

    command: list[str]
    env: dict[str, str]
    port: int
    log: Path


@contextlib.contextmanager
def children(servers: dict[str, ServerCommand]) -> Iterator[dict[str, subprocess.Popen]]:
    """Server child processes, every one started before any is waited for (their start-ups,
    mostly imports, overlap on the cores), each ready (``/readyz`` 200) on entry; all stopped
    on exit."""
    with contextlib.ExitStack() as stack:
        processes = {name: stack.enter_context(_running(server)) for name, server in servers.items()}
        for name, server in servers.items():
            _wait_ready(processes[name], server)
        yield processes


@contextlib.contextmanager
def child(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """One server child process, ready on entry and stopped on exit."""
    with children({"server": ServerCommand(command, env, port, log)}) as processes:
        yield processes["server"]


@contextlib.contextmanager
def _running(server: ServerCommand) -> Iterator[subprocess.Popen]:
    with open(server.log, "wb") as output:
        process = subprocess.Popen(
            server.command, env=server.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(process: subprocess.Popen, server: ServerCommand) -> None:
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{server.command} exited: {server.log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{server.port}/readyz").status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.command} not ready: {server.log.read_text()[-2000:]}")
        time.sleep(0.2)


def publish(store: CheckpointStore, base_model: str, spec: TuningSpec, state: dict[str, torch.Tensor]) -> int:
    parent = store.latest_version()
    manifest = store.publish(
        lambda directory: save_state(state, spec.tuning, directory),
        lambda version, files: Manifest(
            version=version,
            parent_version=parent,
            base_model=base_model,
            tuning=spec.to_dict(),
            created_at=datetime.now(UTC).isoformat(),
            files=files,
            kafka_offsets={},
            examples_seen=32 * version,
            examples_in_version=32,
            last_train_loss=None,
            max_length=MAX_LENGTH,
        ),
    )
    return manifest.version


def publish_trained_versions(store: CheckpointStore, base_model: str, count: int) -> list[int]:
    """``count`` LoRA versions, each two AdamW steps further on synthetic labelled events."""
    torch.manual_seed(0)
    spec = TuningSpec()
    tokenizer = load_tokenizer(base_model)
    model = wrap_for_tuning(load_base_model(base_model), spec).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    rng = random.Random(1)
    published = []
    for _ in range(count):
        for _ in range(2):
            texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(16)]
            labels = torch.tensor([float("love" in t or "dream" in t) for t in texts])
            logits = model(**encode_pairs(tokenizer, texts, ["likes drama"] * 16, MAX_LENGTH)).logits.squeeze(-1)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
            optimizer.step()
            optimizer.zero_grad()
        published.append(publish(store, base_model, spec, trainable_state(model, spec.tuning)))
    return published


def publish_full_version(store: CheckpointStore, base_model: str) -> int:
    """A fully fine-tuned version (every weight nudged), to measure a swap that replaces all."""
    model = load_base_model(base_model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.001)
    return publish(store, base_model, TuningSpec(tuning="full"), trainable_state(model, "full"))


def swap_cost(port: int, version: int) -> dict:
    """Pin ``version`` and return what the server recorded for that swap (time and memory)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    pinned = httpx.post(f"http://127.0.0.1:{port}/v1/admin/pin", json={"version": version}, headers=admin, timeout=60)
    pinned.raise_for_status()
    swap = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=admin, timeout=60).json()["last_swap"]
    return swap | {"memory_increase_bytes": swap["memory_peak_bytes"] - swap["memory_before_bytes"]}


def server_metrics(port: int) -> dict:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        values[name] = float(value)
    count = values.get("streamtune_model_swap_seconds_count", 0)
    batches = values.get("streamtune_inference_batch_size_count", 0)
    return {
        "swap_seconds_mean": values.get("streamtune_model_swap_seconds_sum", 0) / count if count else None,
        "swap_peak_resident_bytes": values.get("streamtune_model_swap_peak_memory_bytes"),
        "swap_memory_increase_bytes": values.get("streamtune_model_swap_memory_increase_bytes"),
        "resident_bytes": values.get("process_resident_memory_bytes"),
        "mean_forward_batch": values.get("streamtune_inference_batch_size_sum", 0) / batches if batches else None,
    }


def backend_figures(port: int, server: str) -> dict:
    """What a streamtune variant serves on: its backend's score difference to torch on the
    reference set (checked at load) and how many versions it refused (served on torch)."""
    from streamtune.inference.backends.acceptance import TOLERANCES

    backend = STREAMTUNE_VARIANTS[server]
    quantize = backend.get("STREAMTUNE_SERVE_QUANTIZE", "none")
    name = backend.get("STREAMTUNE_SERVE_BACKEND", "torch") + ("" if quantize == "none" else f"-{quantize}")
    difference, refused = None, 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith(f'streamtune_serve_backend_score_difference{{backend="{name}"}}'):
            difference = float(line.rpartition(" ")[2])
        elif line.startswith("streamtune_serve_backend_rejections_total{") and f'backend="{name}"' in line:
            refused += float(line.rpartition(" ")[2])
    return {"backend": name, "score_difference": difference, "tolerance": TOLERANCES[quantize], "refused": refused}


def bench_model(
    name: str,
    base_model: str,
    workdir: Path,
    bootstrap: str,
    plan: BenchPlan,
) -> dict:
    """Both servers run side by side and are measured in turns (order alternating between
    repeats), so a change in the machine's background load hits both alike; each swap run
    follows the steady run it is compared with."""
    print(f"== {name} ({base_model})", flush=True)
    selected = {variant: STREAMTUNE_VARIANTS[variant] for variant in ("streamtune", *plan.variants)}
    store = CheckpointStore(workdir / name / "checkpoints")
    pins = publish_trained_versions(store, base_model, 2)
    full_version = publish_full_version(store, base_model)
    store.set_latest(pins[-1])
    bodies = payloads(256)
    ports = {server: free_port() for server in (*selected, *NAIVE_VARIANTS)}
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "STREAMTUNE_BASE_MODEL": base_model,
        "STREAMTUNE_CHECKPOINT_DIR": str(store.root),
        "STREAMTUNE_HTTP_PORT": str(ports["streamtune"]),
        "STREAMTUNE_ADMIN_TOKEN": ADMIN_TOKEN,
        "STREAMTUNE_DEVICE": "cpu",
        "STREAMTUNE_MAX_LENGTH": str(MAX_LENGTH),
        "STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMTUNE_MODELS_TOPIC": f"bench-models-{name}",
        **ADMIT_EVERYTHING,
    }
    serve = [sys.executable, "-m", "streamtune.cli", "--log-level", "warning", "serve"]
    commands = {
        server: (serve, env | backend | {"STREAMTUNE_HTTP_PORT": str(ports[server])})
        for server, backend in selected.items()
    }
    for variant, extra_env in NAIVE_VARIANTS.items():
        naive = [sys.executable, "-m", "benchmarks.naive_server", base_model, str(ports[variant])]
        commands[variant] = ([*naive, "--max-length", str(MAX_LENGTH)], env | extra_env)
    versions = {server: set(pins) if server in selected else None for server in ports}
    runs: dict[str, dict[int, list[dict]]] = {server: {c: [] for c in CONCURRENCIES} for server in ports}
    swap_runs: list[dict] = []
    servers = {
        server: ServerCommand(command, server_env, ports[server], workdir / f"{name}-{server}.log")
        for server, (command, server_env) in commands.items()
    }
    with children(servers) as processes:
        pids = {server: process.pid for server, process in processes.items()}
        for server in selected:
            pinned = httpx.post(
                f"http://127.0.0.1:{ports[server]}/v1/admin/pin",
                json={"version": pins[0]},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=300,  # the ONNX variants export the version first
            )
            pinned.raise_for_status()
        for repeat in range(plan.repeats):
            order = list(ports) if repeat % 2 == 0 else list(ports)[::-1]
            for concurrency in CONCURRENCIES:
                for server in order:
                    target = LoadTarget(ports[server], pids[server], versions[server])
                    run = measure(target, ClosedLoad(concurrency, plan.seconds), bodies)
                    runs[server][concurrency].append(run)
                    cpu = run["cpu_ms_per_request"]  # None: no request succeeded in the window
                    print(
                        f"  {server:<13} c={concurrency:<3} {run['throughput_rps']:7.1f} req/s "
                        f"{'-' if cpu is None else f'{cpu:.1f}':>6} CPU ms/request, {run['errors']} errors",
                        flush=True,
                    )
            swap_run = asyncio.run(load_with_swaps(ports["streamtune"], bodies, pins[::-1], plan.swap_seconds))
            swap_run["steady_p99_ms"] = runs["streamtune"][SWAP_CONCURRENCY][-1]["p99_ms"]
            swap_runs.append(swap_run)
            print(
                f"  streamtune    c={SWAP_CONCURRENCY:<3} {swap_run['throughput_rps']:7.1f} req/s, swapping", flush=True
            )
        server_figures = server_metrics(ports["streamtune"])
        backends = {server: backend_figures(ports[server], server) for server in selected}
        # One more swap of each kind, idle, for its memory: LoRA (an overlay of the adapted
        # layers) and full fine-tuning (a whole staging copy).
        server_figures["full_swap"] = swap_cost(ports["streamtune"], full_version)
        server_figures["lora_swap"] = swap_cost(ports["streamtune"], pins[0])
    result: dict = {"base_model": base_model, "versions": pins, "load_average": os.getloadavg()}
    for server in ports:
        result[server] = {c: median_of(runs[server][c]) for c in CONCURRENCIES}
    result["swaps"] = {
        **median_of(swap_runs),
        "swaps": sum(run["swaps"] for run in swap_runs),
        "swap_errors": sum(run["swap_errors"] for run in swap_runs),
        "during_swap_p99_ms": statistics.median(
            run["during_swap"]["p99_ms"] for run in swap_runs if run["during_swap"]["p99_ms"] is not None
        ),
    }
    result["server"] = server_figures
    result["backends"] = backends
    top = CONCURRENCIES[-1]
    # The baseline is the better naive variant at that concurrency: the ratio is not inflated
    # by a configuration a careful user would avoid.
    baseline = max(NAIVE_VARIANTS, key=lambda variant: result[variant][top]["throughput_rps"])
    result["backend_ratios"] = {
        server: {
            "throughput_vs_naive_c32": result[server][top]["throughput_rps"] / result[baseline][top]["throughput_rps"],
            "p99_vs_naive_c32": result[server][top]["p99_ms"] / result[baseline][top]["p99_ms"],
            "cpu_per_request_naive_vs_server_c32": result[baseline][top]["cpu_ms_per_request"]
            / result[server][top]["cpu_ms_per_request"],
        }
        for server in selected
    }
    result["ratios"] = {
        "baseline": baseline,
        "throughput_vs_naive_c32": result["streamtune"][top]["throughput_rps"]
        / result[baseline][top]["throughput_rps"],
        "p99_vs_naive_c32": result["streamtune"][top]["p99_ms"] / result[baseline][top]["p99_ms"],
        "cpu_per_request_naive_vs_streamtune_c32": result[baseline][top]["cpu_ms_per_request"]
        / result["streamtune"][top]["cpu_ms_per_request"],
        # Each swap run against the steady run just before it, then the median over repeats.
        "p99_swaps_vs_steady": statistics.median(run["p99_ms"] / run["steady_p99_ms"] for run in swap_runs),
        "p99_in_swap_window_vs_steady": statistics.median(
            run["during_swap"]["p99_ms"] / run["steady_p99_ms"]
            for run in swap_runs
            if run["during_swap"]["p99_ms"] is not None
        ),
        "errors": result["swaps"]["errors"]
        + result["swaps"]["swap_errors"]
        + sum(result["streamtune"][c]["errors"] for c in CONCURRENCIES),
    }
    return result


def table(results: dict) -> str:
    lines = [
        f"{'model':<8} {'server':<22} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'CPU ms/req':>10}"
    ]
    for name, result in results.items():
        for server in (*result["backends"], *NAIVE_VARIANTS):
            for concurrency in CONCURRENCIES:
                row = result[server][concurrency]
                lines.append(
                    f"{name:<8} {server:<22} {concurrency:>4} {row['throughput_rps']:>8.1f} "
                    f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['errors']:>6} {row['cpu_ms_per_request']:>10.1f}"
                )
        swaps = result["swaps"]
        lines.append(
            f"{name:<8} {'streamtune, swap/2s':<22} {SWAP_CONCURRENCY:>4} {swaps['throughput_rps']:>8.1f} "
            f"{swaps['p50_ms']:>8.1f} {swaps['p99_ms']:>8.1f} {swaps['errors'] + swaps['swap_errors']:>6}"
            f"   ({swaps['swaps']} swaps; p99 of requests overlapping a swap {swaps['during_swap_p99_ms']:.1f} ms)"
        )
        ratios, server = result["ratios"], result["server"]
        lines.append(
            f"{name:<8} ratios vs {ratios['baseline']}: throughput at c=32 {ratios['throughput_vs_naive_c32']:.2f}x "
            f"(goal >= 3), p99 at c=32 {ratios['p99_vs_naive_c32']:.2f} (goal <= 1), server CPU per request "
            f"{ratios['cpu_per_request_naive_vs_streamtune_c32']:.2f}x less; "
            f"p99 swapping/steady {ratios['p99_swaps_vs_steady']:.2f} (goal <= 1.1; requests overlapping a swap "
            f"{ratios['p99_in_swap_window_vs_steady']:.2f}); errors {ratios['errors']} (goal 0)"
        )
        for variant, figures in result["backend_ratios"].items():
            backend = result["backends"][variant]
            difference = backend["score_difference"]
            agreement = (
                "reference (plain torch)"
                if difference is None and not backend["refused"]
                else f"scores within {difference:.1e} of torch (tolerance {backend['tolerance']:.0e}), "
                f"{backend['refused']:.0f} versions refused"
                if difference is not None
                else f"refused {backend['refused']:.0f} versions (served on torch)"
            )
            lines.append(
                f"{name:<8} {variant:<22} vs {ratios['baseline']}: throughput at c=32 "
                f"{figures['throughput_vs_naive_c32']:.2f}x, p99 {figures['p99_vs_naive_c32']:.2f}, CPU per request "
                f"{figures['cpu_per_request_naive_vs_server_c32']:.2f}x less; {agreement}"
            )
        lora, full = server["lora_swap"], server["full_swap"]
        lines.append(
            f"{name:<8} swaps under load: {server['swap_seconds_mean'] * 1000:.0f} ms mean (verify, build, warm up "
            f"between batches); idle swap to a LoRA version {lora['seconds'] * 1000:.0f} ms, resident memory "
            f"+{lora['memory_increase_bytes'] / 2**20:.1f} MiB at peak; to a fully fine-tuned version "
            f"{full['seconds'] * 1000:.0f} ms, +{full['memory_increase_bytes'] / 2**20:.1f} MiB at peak "
            f"(process {full['memory_peak_bytes'] / 2**20:.0f} MiB); mean rows per forward "
            f"{server['mean_forward_batch']:.1f}; load average {result['load_average'][0]:.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "serving.json")
    parser.add_argument("--models", default="minilm,tiny", help="comma-separated: minilm, tiny")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--swap-seconds", type=float, default=8.0, help="measured seconds per run with swaps")
    parser.add_argument(
        "--variants", default=",".join(STREAMTUNE_VARIANTS), help="streamtune variants (backends), comma-separated"
    )
    args = parser.parse_args(argv)
    variants = tuple(args.variants.split(","))
    if unknown := set(variants) - set(STREAMTUNE_VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}: use {', '.join(STREAMTUNE_VARIANTS)}")
    started, started_machine = time.perf_counter(), machine()
    results = {}
    with work_directory("serving") as workdir, embedded_broker(workdir) as bootstrap:
        # The server follows announcements on a real (embedded) broker, as deployed.
        for name in args.models.split(","):
            if name == "minilm":
                base_model, repeats = resolve_base_model(None), args.repeats
            elif name == "tiny":
                from streamtune.testing.tiny_models import save_tiny_bert

                base_model, repeats = save_tiny_bert(workdir / "tiny-bert", tokenizer_from=resolve_base_model(None)), 1
            else:
                raise SystemExit(f"unknown model {name!r}: use minilm or tiny")
            plan = BenchPlan(args.seconds, repeats, args.swap_seconds, variants)
            results[name] = bench_model(name, base_model, workdir, bootstrap, plan)
    settings = {
        "concurrencies": CONCURRENCIES,
        "swap_every_s": SWAP_EVERY_S,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "swap_seconds": args.swap_seconds,
        "max_length": MAX_LENGTH,
        "naive_variants": NAIVE_VARIANTS,
        "streamtune_variants": {variant: STREAMTUNE_VARIANTS[variant] for variant in ("streamtune", *variants)},
        "server_environment": ADMIT_EVERYTHING,
    }
    payload = {"settings": settings, "results": results, "elapsed_s": round(time.perf_counter() - started)}
    print()
    write_result(args.out, "serving", started_machine, payload, table(results))
    return payload


if __name__ == "__main__":
    main()
