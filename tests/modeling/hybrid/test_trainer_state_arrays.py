"""The trainer state's key spaces survive the flat-array encoding exactly: order, rows, clocks,
pending sightings, and keys that are not ASCII."""

from __future__ import annotations

import pytest

from streamtune.modeling.hybrid import HybridConfig, HybridLearner, HybridModel, trainer_state


def _learner(user_ids: list[str]) -> HybridLearner:
    learner = HybridLearner(HybridModel(HybridConfig(use_text=False, user_rows=64, item_rows=64, admit_after=2)))
    for step, user in enumerate(user_ids):
        learner.learn([{"user_id": user, "item_id": f"i{step % 3}", "label": step % 2}])
    return learner


@pytest.mark.parametrize(
    "user_ids",
    [
        ["u1", "u2", "u1", "u3", "u2", "u1"],
        ["Zoë", "東京", "Zoë", "plain", "東京", "🎬", "Zoë"],  # multi-byte keys take the UTF-8 path
        [],
    ],
)
def test_key_spaces_come_back_equal_through_the_arrays(user_ids):
    learner = _learner(user_ids)
    state = learner.trainer_state()
    decoded = trainer_state.decode(trainer_state.encode(state))
    assert decoded is not None
    for space, mapping in state["mappings"].items():
        back = decoded["mappings"][space]
        assert back["rows"] == mapping["rows"]  # the least-recently-seen order too
        assert back["last_seen"] == mapping["last_seen"]
        assert back["pending"] == mapping["pending"]
    if user_ids:
        assert state["mappings"]["users"]["pending"], "the example should leave a key still counting"
