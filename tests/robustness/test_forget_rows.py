"""Forgetting a user in the trainer's memory: the replay buffer and the holdout window drop that
user's rows, keep everyone else's (in order, with cached scores), and the saved window keeps
the tags so a later load can be purged too."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from streamtune.modeling.encoding import encode_pairs
from streamtune.trainer.gate.holdout import HoldoutWindow
from streamtune.trainer.optim.replay_buffer import ReplayBuffer
from streamtune.trainer.token_rows import RowFormat

WIDTH = 16
ALICE, BOB, NOBODY = 11, -22, 0


@pytest.fixture(scope="module")
def batch(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = [f"film number {i}" for i in range(8)]
    inputs = encode_pairs(tokenizer, texts, [None] * 8, WIDTH)
    users = np.array([ALICE, BOB, ALICE, NOBODY, BOB, ALICE, BOB, NOBODY], dtype=np.int64)
    labels = np.arange(8, dtype=np.float32)  # the label says which row it was
    return inputs, labels, users, RowFormat(WIDTH, len(tokenizer), token_types=True, pad_id=0)


def test_replay_buffer_forgets_one_users_rows(batch):
    inputs, labels, users, shape = batch
    buffer = ReplayBuffer(100, 1 << 20, shape, seed=0)
    buffer.add(inputs, np.arange(8), labels, users)
    assert buffer.forget_users(np.array([ALICE])) == 3
    assert buffer.forget_users(np.array([ALICE])) == 0
    assert buffer.forget_users(np.array([NOBODY])) == 0  # "no user" is never forgotten
    _, kept = buffer.sample(100)
    assert sorted(kept.tolist()) == [1, 3, 4, 6, 7]
    assert len(buffer) == 5 and buffer.seen == 8  # the reservoir's arrival count is unchanged


def test_holdout_window_forgets_in_order_and_keeps_cached_scores(batch):
    inputs, labels, users, shape = batch
    window = HoldoutWindow(6, shape)  # smaller than the batch: the ring has wrapped
    window.add(inputs, np.arange(8), labels, users)
    window.set_scores("published", np.linspace(0.1, 0.6, 6))
    assert window.labels().tolist() == [2, 3, 4, 5, 6, 7]
    assert window.forget_users(np.array([BOB, 999])) == 2
    assert window.labels().tolist() == [2, 3, 5, 7]
    assert window.scores("published") == pytest.approx([0.1, 0.2, 0.4, 0.6])
    window.add(inputs, np.array([0]), np.array([9.0], dtype=np.float32), np.array([ALICE]))
    assert window.labels().tolist() == [2, 3, 5, 7, 9]

    saved = window.state()
    assert saved["holdout.users"].tolist() == [ALICE, NOBODY, ALICE, NOBODY, ALICE]
    restored = HoldoutWindow(6, shape)
    restored.load_state(saved)
    assert restored.forget_users(np.array([ALICE])) == 3
    assert restored.labels().tolist() == [3, 7]


def test_windows_saved_without_tags_load_as_untagged(batch):
    inputs, labels, _, shape = batch
    window = HoldoutWindow(8, shape)
    window.add(inputs, np.arange(4), labels[:4])
    saved = {key: value for key, value in window.state().items() if key != "holdout.users"}
    restored = HoldoutWindow(8, shape)
    restored.load_state(saved)
    assert len(restored) == 4 and restored.forget_users(np.array([ALICE, BOB])) == 0
