"""Where a served request's CPU time goes: py-spy samples of a live server under load.

Starts ``streamtune serve`` (the base model, version 0, on an empty store) as a child process,
drives it with the closed-loop load of :mod:`benchmarks.serving` (one instance per request),
and samples every thread of the server with py-spy while the load runs. Each sample is put in
one stage by the innermost frame that names it (see :data:`STAGES`): the model's forward pass,
tokenization, padding and bucketing, JSON and validation, the HTTP stack, and the hand-offs
between the event loop and the batcher's worker. The table gives each stage's share of the
samples in which a thread was running (py-spy leaves out idle threads).

Run from the repository root, py-spy installed (the dev extra):
``python -m benchmarks.serving_profile [--model minilm|tiny] [--seconds 10] [--env NAME=VALUE]``
(e.g. ``--env STREAMTUNE_SERVE_BACKEND=onnx``, ``--env STREAMTUNE_SERVE_WORKERS=1``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import RESULTS_DIR, embedded_broker, free_port, machine, work_directory, write_result
from benchmarks.serving import ADMIT_EVERYTHING, ClosedLoad, LoadTarget, child, closed_loop, payloads, summarize
from streamtune.modeling.base import resolve_base_model

# Stage of a sample: the first rule (in this order) that matches a frame of its stack, read
# from the innermost frame outwards. A rule is (stage, substring of "function (file:line)").
STAGES = (
    ("forward: ONNX Runtime", "onnxruntime/"),
    ("forward: torch model", "torch/nn/"),
    ("forward: torch model", "transformers/models/"),
    ("padding and tensors", "tokenization_utils_base.py"),
    ("padding and tensors", "pad ("),
    ("tokenization", "tokenizers"),
    ("tokenization", "tokenization_"),
    ("length bucketing", "bucketing.py"),
    ("JSON and validation", "pydantic"),
    ("JSON and validation", "json/"),
    ("JSON and validation", "fastapi/routing.py"),
    ("admission and queueing", "streamtune/inference/batching.py"),
    ("admission and queueing", "streamtune/inference/admission.py"),
    ("thread hand-offs", "call_soon_threadsafe"),
    ("thread hand-offs", "threading.py"),
    ("metrics", "prometheus_client"),
    ("HTTP stack (uvicorn, starlette)", "uvicorn/"),
    ("HTTP stack (uvicorn, starlette)", "starlette/"),
    ("HTTP stack (uvicorn, starlette)", "httptools"),
    ("event loop", "asyncio/"),
    ("event loop", "uvloop"),
)


def stage_of(frames: list[str]) -> str:
    """The stage a stack (outermost frame first) is counted in."""
    for frame in reversed(frames):
        for stage, marker in STAGES:
            if marker in frame:
                return stage
    return "other"


def classify(raw: str) -> dict[str, float]:
    """Share of samples per stage, from py-spy's ``raw`` (collapsed stacks) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[stage_of(stack.split(";"))] += int(count)
    total = sum(counts.values()) or 1
    return {stage: count / total for stage, count in counts.most_common()}


def profile(base_model: str, workdir: Path, bootstrap: str, args: argparse.Namespace) -> dict:
    """Load ``base_model``'s server with ``args.concurrency`` clients for ``args.seconds`` while
    py-spy samples it; the load's figures and the share of samples per stage."""
    seconds, concurrency = args.seconds, args.concurrency
    env_extra = dict(item.split("=", 1) for item in args.env)
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "STREAMTUNE_BASE_MODEL": base_model,
        "STREAMTUNE_CHECKPOINT_DIR": str(workdir / "checkpoints"),
        "STREAMTUNE_HTTP_PORT": str(port),
        "STREAMTUNE_DEVICE": "cpu",
        "STREAMTUNE_MAX_LENGTH": "128",
        "STREAMTUNE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMTUNE_MODELS_TOPIC": "profile-models",
        **ADMIT_EVERYTHING,  # a closed loop: measure scoring, not refusals
        **env_extra,
    }
    command = [sys.executable, "-m", "streamtune.cli", "--log-level", "warning", "serve"]
    bodies = payloads(256)
    raw_path = workdir / "profile.txt"
    with child(command, env, port, workdir / "server.log") as server:
        sampler = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid)),
                *("--format", "raw", "--rate", "200", "--duration", str(int(seconds))),
                *("--nonblocking", "--output", str(raw_path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        samples, begin, end, cpu = asyncio.run(
            closed_loop(LoadTarget(port, server.pid), ClosedLoad(concurrency, seconds, warmup_s=0.0), bodies)
        )
        sampler.wait(60)
    return {"load": summarize(samples, end - begin, cpu), "stages": classify(raw_path.read_text())}


def table(result: dict) -> str:
    load = result["load"]
    lines = [
        f"c={result['concurrency']}: {load['throughput_rps']:.1f} req/s, p50 {load['p50_ms']:.1f} ms, "
        f"p99 {load['p99_ms']:.1f} ms, {load['cpu_ms_per_request']:.1f} server CPU ms/request",
        f"{'stage':<34} {'share of busy samples':>22} {'CPU ms/request':>15}",
    ]
    for stage, share in result["stages"].items():
        lines.append(f"{stage:<34} {share * 100:>21.1f}% {share * load['cpu_ms_per_request']:>15.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "serving_profile.json")
    parser.add_argument("--model", default="minilm", choices=("minilm", "tiny"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server, repeatable")
    args = parser.parse_args()
    started_machine = machine()
    with work_directory("serving-profile") as workdir, embedded_broker(workdir) as bootstrap:
        if args.model == "tiny":
            from streamtune.testing.tiny_models import save_tiny_bert

            base_model = save_tiny_bert(workdir / "tiny-bert", tokenizer_from=resolve_base_model(None))
        else:
            base_model = resolve_base_model(None)
        started = time.perf_counter()
        result = profile(base_model, workdir, bootstrap, args)
    result |= {"model": args.model, "concurrency": args.concurrency, "server_env": args.env}
    result["elapsed_s"] = round(time.perf_counter() - started)
    write_result(args.out, "serving_profile", started_machine, result, table(result))


if __name__ == "__main__":
    main()
