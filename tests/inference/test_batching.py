"""The dynamic batcher with a real (tiny) transformer: coalescing, one version per batch, bounds."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import ModelNotReadyError, QueueFullError
from streamtune.inference.batch_policy import BatchingPolicy
from streamtune.inference.batching import DynamicBatcher
from streamtune.inference.loading import ModelLoader
from streamtune.inference.slot import ModelSlot
from streamtune.metrics import ServingMetrics
from streamtune.testing.network import wait_for
from tests.support.versions import publish_perturbed_version

TEXTS = [f"a film about item {index}" for index in range(10)]  # one token length: one forward


@pytest.fixture
def loader(tmp_path, tiny_model_dir) -> ModelLoader:
    store = CheckpointStore(tmp_path)
    publish_perturbed_version(store, tiny_model_dir, tuning="lora", seed=1)
    publish_perturbed_version(store, tiny_model_dir, tuning="full", seed=2)
    return ModelLoader(store, tiny_model_dir, torch.device("cpu"), max_length=32)


class HeldWorker:
    """Occupies the batcher's worker until released, so requests pile up deterministically."""

    def __init__(self, batcher: DynamicBatcher) -> None:
        self._release = threading.Event()
        running = threading.Event()

        def hold() -> None:
            running.set()
            self._release.wait(30)

        self._thread = threading.Thread(target=batcher.run_exclusive, args=(hold,))
        self._thread.start()
        assert running.wait(10)

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)


def pile_up(batcher: DynamicBatcher, requests: list[tuple[list, list]], meanwhile=None, answered=None) -> list:
    """Submit ``requests`` while the worker is held, run ``meanwhile`` once all are queued,
    release the worker and return the results; ``answered`` collects the requests' indices in
    the order they were answered."""
    batcher.start()

    async def scenario() -> list:
        held = HeldWorker(batcher)
        tasks = [asyncio.create_task(batcher.score(texts, contexts)) for texts, contexts in requests]
        for index, task in enumerate(tasks if answered is not None else []):
            task.add_done_callback(lambda _, index=index: answered.append(index))
        rows = sum(len(texts) for texts, _ in requests)
        await asyncio.to_thread(wait_for, lambda: batcher.queued_rows == rows, 10)
        if meanwhile is not None:
            await meanwhile()
        held.release()
        return await asyncio.gather(*tasks)

    try:
        return asyncio.run(scenario())
    finally:
        batcher.stop()


def sample(metrics: ServingMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_concurrent_requests_share_one_forward_and_get_their_own_scores(loader):
    metrics = ServingMetrics()
    served = loader.load(1)
    batcher = DynamicBatcher(lambda: served, metrics, BatchingPolicy(max_batch=64, max_wait_s=0.005))
    results = pile_up(batcher, [([text], [None]) for text in TEXTS])
    assert sample(metrics, "streamtune_inference_batch_size_count") == 1
    assert sample(metrics, "streamtune_inference_batch_size_sum") == len(TEXTS)
    alone = [served.predict([text], [None])[0] for text in TEXTS]
    assert [result.scores[0] for result in results] == pytest.approx(alone, abs=1e-5)
    assert {result.version for result in results} == {1}


def test_a_batch_uses_the_version_current_when_it_runs_never_a_mix(loader):
    metrics = ServingMetrics()
    slot = ModelSlot(loader.load, metrics)
    slot.ensure(1)
    batcher = DynamicBatcher(lambda: slot.current, metrics)

    async def swap() -> None:  # the swap lands while the requests wait
        await asyncio.to_thread(slot.ensure, 2)

    results = pile_up(batcher, [([text], ["ctx"]) for text in TEXTS], meanwhile=swap)
    expected = slot.current.predict(TEXTS, ["ctx"] * len(TEXTS))
    assert {result.version for result in results} == {2}
    assert [result.scores[0] for result in results] == pytest.approx(expected, abs=1e-5)


def test_a_full_queue_refuses_at_once_and_queued_requests_still_complete(loader):
    metrics = ServingMetrics()
    served = loader.load(0)
    batcher = DynamicBatcher(lambda: served, metrics, BatchingPolicy(max_batch=2, max_queued=3))

    async def one_more() -> None:
        with pytest.raises(QueueFullError):
            await batcher.score(TEXTS[:1], [None])

    results = pile_up(batcher, [(TEXTS[:1], [None])] * 3, meanwhile=one_more)
    assert len(results) == 3 and all(result.version == 0 for result in results)
    assert sample(metrics, "streamtune_inference_batch_size_count") == 2  # max_batch=2: 2 + 1 rows


def test_short_requests_are_answered_before_the_long_rows_of_their_batch(tmp_path, tiny_model_dir):
    served = ModelLoader(CheckpointStore(tmp_path), tiny_model_dir, torch.device("cpu"), max_length=128).load(0)
    metrics = ServingMetrics()
    long_text = "a very long item description " * 20
    answered: list[int] = []
    long, short = pile_up(
        DynamicBatcher(lambda: served, metrics), [([long_text], [None]), (["short"], [None])], answered=answered
    )
    assert sample(metrics, "streamtune_inference_batch_size_count") == 2  # one batch, two lengths
    assert answered == [1, 0]
    assert short.scores == pytest.approx(served.predict(["short"], [None]), abs=1e-5)
    assert long.scores == pytest.approx(served.predict([long_text], [None]), abs=1e-5)


def test_without_a_model_requests_are_refused_not_hung(loader):
    batcher = DynamicBatcher(lambda: None, ServingMetrics())
    batcher.start()
    try:
        with pytest.raises(ModelNotReadyError):
            asyncio.run(batcher.score(["text"], [None]))
    finally:
        batcher.stop()


def test_the_old_version_is_freed_once_its_in_flight_batch_is_done(loader):
    """Full fine-tuning: the old copy lives exactly as long as a batch still uses it."""
    metrics = ServingMetrics()
    slot = ModelSlot(loader.load, metrics)
    slot.ensure(2)  # a full version: every tensor its own
    in_forward, finish = threading.Event(), threading.Event()

    def current_then_pause():
        served = slot.current
        in_forward.set()
        finish.wait(30)  # stands for a long forward pass on this version
        return served

    batcher = DynamicBatcher(current_then_pause, metrics)
    batcher.start()
    old = weakref.ref(slot.current.module)

    async def scenario():
        request = asyncio.create_task(batcher.score(["text"], [None]))
        await asyncio.to_thread(in_forward.wait, 10)
        await asyncio.to_thread(slot.ensure, 1)
        gc.collect()
        alive_during_batch = old() is not None
        finish.set()
        return alive_during_batch, await request

    try:
        alive_during_batch, result = asyncio.run(scenario())
    finally:
        finish.set()
        batcher.stop()
    assert alive_during_batch and result.version == 2
    gc.collect()
    assert old() is None, "the replaced version is still referenced after its batch finished"
