"""Micro-benchmark of one MiniLM forward pass on CPU (fp32), in one process: what a row costs.

The rows are the serving benchmark's request bodies (``benchmarks.serving.payloads``: item texts
of 8–40 words and a genre context), tokenized as the server does. Each cell is one way to run a
batch: linear-layer kernel (torch's stock fp32 path, MKL on x86 wheels, or oneDNN with packed
weights: :mod:`streamtune.modeling.onednn`), attention implementation (SDPA or eager),
torch threads (1 or 2), rows per batch (1, 8, 32), padding (to the batch's longest row, as the
server pads a length group, or to max_length) and grad mode (``inference_mode`` or ``no_grad``).

All cells run in rounds, each round every cell once in a shuffled order, so a change in the
machine's load hits every cell alike; the figure is the median over rounds of wall-clock and
process-CPU milliseconds per row. Run: ``python -m benchmarks.forward_micro [--seconds 240]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from dataclasses import dataclass

import torch

from benchmarks.serving import MAX_LENGTH, payloads
from streamtune.modeling.base import load_base_model, load_tokenizer, resolve_base_model
from streamtune.modeling.encoding import PAD_MULTIPLE
from streamtune.modeling.onednn import PackedWeights, with_onednn_linears


@dataclass(frozen=True)
class Cell:
    """One way to run a batch."""

    kernel: str  # "stock" | "onednn"
    attention: str  # "sdpa" | "eager"
    threads: int
    rows: int
    padding: str  # "longest" | "max_length"
    grad: str  # "inference_mode" | "no_grad"

    @property
    def label(self) -> str:
        return (
            f"{self.kernel:<6} {self.attention:<5} t={self.threads} rows={self.rows:<2} {self.padding:<10} {self.grad}"
        )


def cells() -> list[Cell]:
    """The full grid of kernel × threads × rows, and one-factor variations around it."""
    grid = [
        Cell(kernel, "sdpa", threads, rows, "longest", "inference_mode")
        for kernel in ("stock", "onednn")
        for threads in (1, 2)
        for rows in (1, 8, 32)
    ]
    variations = [
        *(
            Cell(kernel, "eager", 1, rows, "longest", "inference_mode")
            for kernel in ("stock", "onednn")
            for rows in (1, 32)
        ),
        *(
            Cell(kernel, "sdpa", 1, rows, "max_length", "inference_mode")
            for kernel in ("stock", "onednn")
            for rows in (8, 32)
        ),
        *(Cell(kernel, "sdpa", 1, 1, "longest", "no_grad") for kernel in ("stock", "onednn")),
    ]
    return grid + variations


def batches(tokenizer, rows: int, padding: str, count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` batches of ``rows`` consecutive request bodies each."""
    bodies = [json.loads(body)["instances"][0] for body in payloads(256)]
    result = []
    for index in range(count):
        chunk = [bodies[(index * rows + offset) % len(bodies)] for offset in range(rows)]
        features = tokenizer(
            [row["text"] for row in chunk],
            [row["context"] for row in chunk],
            truncation="longest_first",
            max_length=MAX_LENGTH,
            padding="max_length" if padding == "max_length" else "longest",
            pad_to_multiple_of=PAD_MULTIPLE if padding == "longest" else None,
            return_tensors="pt",
        )
        result.append(dict(features))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="time budget for all rounds")
    parser.add_argument("--max-rounds", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_interop_threads(1)
    base_model = resolve_base_model(None)
    tokenizer = load_tokenizer(base_model)
    models = {}
    for attention in ("sdpa", "eager"):
        stock = load_base_model(base_model).eval()
        stock.config._attn_implementation = attention  # BERT reads it at every forward
        models["stock", attention] = stock
        models["onednn", attention] = with_onednn_linears(stock, PackedWeights())
    grid = cells()
    inputs = {cell: batches(tokenizer, cell.rows, cell.padding, 4) for cell in grid}
    tokens = {cell: statistics.mean(int(b["attention_mask"].sum()) / cell.rows for b in inputs[cell]) for cell in grid}
    wall: dict[Cell, list[float]] = {cell: [] for cell in grid}
    cpu: dict[Cell, list[float]] = {cell: [] for cell in grid}
    rng = random.Random(0)
    started = time.perf_counter()
    print(f"load average at start {os.getloadavg()}", flush=True)
    for round_index in range(args.max_rounds):
        order = grid[:]
        rng.shuffle(order)
        for cell in order:
            torch.set_num_threads(cell.threads)
            model = models[cell.kernel, cell.attention]
            features = inputs[cell][round_index % len(inputs[cell])]
            mode = torch.inference_mode() if cell.grad == "inference_mode" else torch.no_grad()
            with mode:
                model(**features)  # warm: allocator and kernel choice for this shape
                wall_from, cpu_from = time.perf_counter(), time.process_time()
                model(**features)
                wall[cell].append((time.perf_counter() - wall_from) * 1000 / cell.rows)
                cpu[cell].append((time.process_time() - cpu_from) * 1000 / cell.rows)
        print(f"round {round_index + 1}: {time.perf_counter() - started:.0f} s", flush=True)
        if time.perf_counter() - started > args.seconds and round_index >= 2:
            break
    rows = []
    print(f"\nload average at end {os.getloadavg()}")
    print(f"{'cell':<58} {'tokens/row':>10} {'wall ms/row':>11} {'CPU ms/row':>10} {'rounds':>6}")
    for cell in grid:
        figures = {
            "cell": cell.__dict__,
            "tokens_per_row": tokens[cell],
            "wall_ms_per_row": statistics.median(wall[cell]),
            "cpu_ms_per_row": statistics.median(cpu[cell]),
            "rounds": len(wall[cell]),
        }
        rows.append(figures)
        print(
            f"{cell.label:<58} {tokens[cell]:>10.1f} {figures['wall_ms_per_row']:>11.2f} "
            f"{figures['cpu_ms_per_row']:>10.2f} {len(wall[cell]):>6}"
        )
    return {"load_average_end": os.getloadavg(), "cells": rows}


if __name__ == "__main__":
    main()
