"""The model family in a process of its own (``STREAMTUNE_MODEL_PROCESS``): the same model,
scores, versions and trainer state as the family in the trainer's process, errors raised where
the trainer reads them, and a child that never outlives the trainer. Real tiny BERT, real
directory stores, real child processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from streamtune.checkpoints import CheckpointStore
from streamtune.config import Settings
from streamtune.errors import ConfigurationError, ModelProcessError
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.deferred import Ready, train_later
from streamtune.modeling.model_process import ProcessFamily, uses_model_process, wire
from streamtune.privacy import user_tags
from streamtune.testing.events import synthetic_events
from streamtune.trainer.step_records import StepRecords
from tests.modeling.hybrid.family_helpers import batch_of, hybrid_family, hybrid_settings, pseudonymiser, publish
from tests.modeling.hybrid.test_family import assert_same_tables

pytestmark = pytest.mark.slow


@pytest.fixture
def remote(tiny_model_dir, tmp_path):
    family = ProcessFamily(hybrid_settings(tiny_model_dir, tmp_path / "remote", model_process="on"), TrainerMetrics())
    yield family
    family.close()


def test_the_family_in_its_own_process_is_the_family_in_the_trainers(tiny_model_dir, tmp_path, remote):
    local = hybrid_family(hybrid_settings(tiny_model_dir, tmp_path / "local"))
    batches = [batch_of(chunk) for chunk in np.array_split(np.array(synthetic_events(96, seed=3)), 6)]
    for batch in batches[:3]:
        pending = [remote.score_later(batch), remote.train_later(batch)]  # sent before either is read
        expected_scores, expected_step = local.score(batch), local.train(batch)
        np.testing.assert_array_equal(pending[0].result(), expected_scores)
        step = pending[1].result()
        assert step.result.loss == expected_step.loss and step.seconds > 0
        np.testing.assert_array_equal(step.result.scores, expected_step.scores)

    local_snapshot, remote_snapshot = local.snapshot(), remote.snapshot()
    for batch in batches[3:]:
        local.train(batch)
        remote.train_later(batch)
    probe = batches[0]
    with local.scoring_as(local_snapshot, local.snapshot()), remote.scoring_as(remote_snapshot, remote.snapshot()):
        np.testing.assert_array_equal(remote.score(probe), local.score(probe))
    np.testing.assert_array_equal(remote.score(probe), local.score(probe))

    leaving = user_tags([pseudonymiser().pseudonym("u3")])
    assert remote.forget(leaving) == local.forget(leaving)
    local_state, remote_state = local.trainer_state(), remote.trainer_state()
    assert local_state.keys() == remote_state.keys()
    for name, array in local_state.items():
        np.testing.assert_array_equal(remote_state[name], array, err_msg=name)

    # A version written by the model process loads into the trainer's tables.
    assert remote.restore(remote_snapshot) == local.restore(local_snapshot)
    store = CheckpointStore(tmp_path / "written", 10)
    manifest = publish(store, remote, None)
    loaded = hybrid_family(hybrid_settings(tiny_model_dir, tmp_path / "loaded"))
    loaded.load(store.path_of(manifest.version), store.verify(manifest.version))
    assert_same_tables(local.model, loaded.model)


def test_an_error_in_the_model_process_is_raised_where_the_trainer_reads_it(tiny_model_dir, tmp_path, remote):
    local = hybrid_family(hybrid_settings(tiny_model_dir, tmp_path / "local"))
    store = CheckpointStore(tmp_path / "written", 10)
    manifest = publish(store, local, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception) as expected:
        local.load(empty, manifest)
    with pytest.raises(type(expected.value)) as raised:
        remote.load(empty, manifest)
    assert str(raised.value) == str(expected.value)
    batch = batch_of(synthetic_events(8, seed=4))
    np.testing.assert_array_equal(remote.score(batch), local.score(batch))  # still serving calls


def test_the_model_process_stops_with_the_family_and_dies_with_the_trainer(tiny_model_dir, tmp_path, remote):
    child = remote._channel.child
    remote.close()
    assert child.wait(10) == 0
    with pytest.raises(ModelProcessError, match="model process is gone"):
        remote.score(batch_of(synthetic_events(4, seed=5)))

    # A trainer killed by SIGKILL takes its model process with it.
    script = textwrap.dedent(
        f"""
        import time
        from streamtune.metrics import TrainerMetrics
        from streamtune.modeling.model_process import ProcessFamily
        from tests.modeling.hybrid.family_helpers import hybrid_settings
        settings = hybrid_settings({tiny_model_dir!r}, __import__("pathlib").Path({str(tmp_path / "killed")!r}),
                                   model_process="on")
        family = ProcessFamily(settings, TrainerMetrics())
        print(family._channel.child.pid, flush=True)
        time.sleep(600)
        """
    )
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    try:
        model_pid = int(trainer.stdout.readline())
        assert _alive(model_pid)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(10)
        deadline = time.monotonic() + 10
        while _alive(model_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(model_pid), "the model process outlived its trainer"
    finally:
        trainer.kill()
        trainer.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper is dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_family_that_encodes_on_the_ingest_thread_is_refused(settings):
    with pytest.raises(ConfigurationError, match="STREAMTUNE_MODEL_PROCESS=on"):
        ProcessFamily(settings.model_copy(update={"model_process": "on"}), TrainerMetrics())


def test_auto_puts_the_hybrid_family_in_its_own_process_where_there_are_two_cores():
    def chosen(**values: object) -> bool:
        return uses_model_process(Settings(_env_file=None, **values))

    cores = len(os.sched_getaffinity(0))
    assert chosen(model_kind="hybrid") == (cores >= 2)
    assert not chosen(model_kind="text") and not chosen(model_kind="hybrid", model_process="off")
    assert chosen(model_kind="hybrid", model_process="on")


class _Later:
    """A result that arrives when the test says so."""

    def __init__(self, value: object) -> None:
        self.value, self.ready = value, False

    def result(self) -> object:
        self.ready = True
        return self.value


def test_results_are_recorded_in_the_order_the_steps_were_taken():
    recorded: list[object] = []
    records = StepRecords(lag=2)
    first, second, third = _Later("score 1"), _Later("step 1"), _Later("step 2")
    records.add(first, recorded.append)
    records.add(second, recorded.append, training=True)
    assert recorded == [] and records.steps_behind() == 0  # the newest step is not behind
    records.add(third, recorded.append, training=True)  # past the lag: the oldest is waited for
    assert recorded == ["score 1"] and records.steps_behind() == 1
    third.ready = True  # arrived, but after a step still out: recorded in order, not before it
    assert records.steps_behind() == 1 and recorded == ["score 1"]
    records.add(Ready("score 2"), recorded.append)  # past the lag again
    assert recorded == ["score 1", "step 1", "step 2", "score 2"]
    records.settle()
    assert recorded == ["score 1", "step 1", "step 2", "score 2"] and len(records) == 0


def test_a_family_in_the_trainers_process_steps_at_once(tiny_model_dir, tmp_path):
    local = hybrid_family(hybrid_settings(tiny_model_dir, tmp_path / "local"))
    step = train_later(local, batch_of(synthetic_events(8, seed=6)))
    assert step.ready and step.result().result.scores.shape == (8,) and step.result().seconds > 0


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(6.0).reshape(2, 3).t(),  # a strided view
        torch.tensor(3),
        torch.tensor([True, False]),
        torch.ones(3, dtype=torch.bfloat16),  # no numpy dtype: torch's own reduction
        torch.ones(2, requires_grad=True),
        torch.nn.Parameter(torch.ones(2)),
        torch.zeros(2, 3).to_sparse(),
    ],
    ids=["view", "scalar", "bool", "bf16", "requires-grad", "parameter", "sparse"],
)
def test_tensors_cross_the_channel_unchanged(tensor):
    ours, theirs = multiprocessing.Pipe()
    wire.send(ours, {"tensor": tensor})
    received = wire.receive(theirs)["tensor"]
    assert type(received) is type(tensor)
    described = (received.dtype, received.shape, received.requires_grad)
    assert described == (tensor.dtype, tensor.shape, tensor.requires_grad)
    assert torch.equal(received.to_dense(), tensor.to_dense())
    if received.layout == torch.strided and not received.requires_grad:
        received.zero_()  # writable, and not the sender's memory
        assert tensor.any()
