"""Forward passes are sized to the cores the process may use (affinity, a cgroup quota), and
several batcher workers score a real model side by side without mixing requests up."""

from __future__ import annotations

import asyncio
import doctest
import os

import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.inference.backends import threads as threads_module
from streamtune.inference.backends.threads import ForwardPlan, configure_threads, forward_plan, usable_cores
from streamtune.inference.batch_policy import BatchingPolicy
from streamtune.inference.batching import DynamicBatcher
from streamtune.inference.loading import ModelLoader
from streamtune.metrics import ServingMetrics


def test_a_cgroup_quota_caps_the_usable_cores(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two cores, partly
    assert usable_cores(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert usable_cores(quota) == affinity
    assert usable_cores(tmp_path / "absent") == affinity


def test_the_plan_splits_the_cores_and_honours_what_is_configured():
    assert doctest.testmod(threads_module).failed == 0
    assert forward_plan(cores=16) == ForwardPlan(workers=2, threads=7)
    assert forward_plan(threads=4, cores=16) == ForwardPlan(workers=1, threads=4)
    assert forward_plan(workers=3, cores=16) == ForwardPlan(workers=3, threads=5)


def test_configure_threads_sets_torchs_pool():
    before = torch.get_num_threads()
    try:
        assert configure_threads(ForwardPlan(2, 1)).threads == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_two_workers_answer_every_request_with_its_own_scores(tmp_path, tiny_model_dir):
    served = ModelLoader(CheckpointStore(tmp_path), tiny_model_dir, torch.device("cpu"), max_length=32).load(0)
    texts = [f"item {index} " + "word " * (index % 7) for index in range(40)]
    expected = served.predict(texts, [None] * len(texts))
    batcher = DynamicBatcher(lambda: served, ServingMetrics(), BatchingPolicy(max_batch=8, workers=2))
    batcher.start()

    async def ask_all() -> list[float]:
        answers = await asyncio.gather(*(batcher.score([text], [None]) for text in texts))
        return [answer.scores[0] for answer in answers]

    try:
        scores = asyncio.run(ask_all())
        workers_seen = {thread.name for thread in batcher._workers if thread.is_alive()}
    finally:
        batcher.stop()
    assert len(workers_seen) == 2
    assert max(abs(a - b) for a, b in zip(scores, expected, strict=True)) < 1e-5
    assert batcher.rows_per_second is not None and batcher.rows_per_second > 0
