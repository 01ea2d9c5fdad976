"""`streamtune forget USER_ID` against a running trainer: the user's examples leave the replay
buffer and the holdout window, the next version keeps none of them, and a version loaded later
(here: after a rollback) is purged the same way."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import numpy as np
import pytest

from streamtune.checkpoints import CheckpointStore
from streamtune.privacy import Pseudonymiser, user_tag
from streamtune.testing.events import produce, synthetic_events
from streamtune.testing.network import wait_for
from streamtune.testing.processes import ServiceProcess, settings_env
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.versions.files import read_stream_state

pytestmark = pytest.mark.slow

KEY = "forget-test-key-0123456789"
FORGOT = re.compile(r"forgot (\d+) users? on request: (\d+) replay examples and (\d+) holdout examples dropped")


def metric(url: str, name: str) -> float:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def holdout_users(store: CheckpointStore, version: int) -> np.ndarray:
    return read_stream_state(store.path_of(version)).get("holdout.users", np.empty(0, dtype=np.int64))


def test_forget_purges_a_users_examples_now_and_on_every_later_load(settings, tmp_path):
    settings = settings.model_copy(
        update={"holdout_share": 0.3, "pseudonymise_key": KEY, "keep_versions": 1000, "replay_fraction": 0.25}
    )
    events = synthetic_events(80, seed=3, prefix="fg")
    target = "u3"
    tag = user_tag(Pseudonymiser(KEY.encode()).pseudonym(target))
    mine = [event for event in events if event["user_id"] == target]
    held_out = sum(is_holdout(event["event_id"], settings.holdout_share) for event in mine)
    trained = len(mine) - held_out
    assert held_out and trained, "the seed must give the user both kinds of example"

    store = CheckpointStore(settings.checkpoint_dir)
    url = f"http://127.0.0.1:{settings.trainer_metrics_port}/metrics"
    trainer = ServiceProcess("train", settings, tmp_path / "trainer.log")
    try:
        produce(settings.kafka_bootstrap_servers, settings.events_topic, events)
        total_trained = sum(not is_holdout(event["event_id"], settings.holdout_share) for event in events)
        wait_for(lambda: metric(url, "streamtune_examples_trained_total") == total_trained, 120, what="training")
        before = wait_for(
            lambda: (v := store.latest_version()) and store.read_manifest(v).examples_seen == total_trained and v,
            60,
            what="a version with every event",
        )
        assert np.count_nonzero(holdout_users(store, before) == tag) == held_out
        replay_before = metric(url, "streamtune_replay_buffer_examples")

        command = [sys.executable, "-m", "streamtune.cli", "forget", target]
        done = subprocess.run(command, env=settings_env(settings), capture_output=True, text=True, check=True)
        assert target not in done.stdout

        found = wait_for(lambda: FORGOT.search(trainer.log()), 30, what="the trainer applying the request")
        assert [int(group) for group in found.groups()] == [1, trained, held_out]
        assert metric(url, "streamtune_replay_buffer_examples") == replay_before - trained

        produce(settings.kafka_bootstrap_servers, settings.events_topic, synthetic_events(16, seed=4, prefix="more"))
        after = wait_for(lambda: (v := store.latest_version()) > before and v, 60, what="the next version")
        assert not np.any(holdout_users(store, after) == tag)
        assert np.count_nonzero(holdout_users(store, after)) > 0  # the other users' rows are still tagged

        # A rollback to the version from before the request: the reload purges it again.
        subprocess.run(
            [sys.executable, "-m", "streamtune.cli", "rollback", "--to", str(before)],
            env=settings_env(settings),
            check=True,
            capture_output=True,
        )
        wait_for(lambda: len(FORGOT.findall(trainer.log())) >= 2, 60, what="the purge after the reload")
        assert [int(group) for group in FORGOT.findall(trainer.log())[-1]][2] == held_out
        assert f" {target} " not in trainer.log() and f'"{target}"' not in trainer.log()
    finally:
        assert trainer.stop() == 0, trainer.log()[-3000:]
