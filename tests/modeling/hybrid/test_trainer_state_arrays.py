"""The trainer state survives the flat-array encoding exactly: the key spaces' order, rows,
clocks, pending sightings and keys that are not ASCII; the optimizer's moments without pickle;
and states written with the older pickled blob still load."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("user_ids", [["u1", "u2", "u1", "u3", "u2", "u1"], ["Zoë", "東京", "Zoë", "🎬"], []])
def test_live_mappings_are_written_as_their_plain_copies_are(user_ids):
    """The trainer writes the key spaces straight from the live mappings (no copy per version):
    the arrays are exactly those written from ``state_dict`` copies, limits included."""
    learner = _learner(user_ids)
    from_copies = trainer_state.encode(learner.trainer_state())
    live = trainer_state.encode(learner.trainer_state(live_mappings=True))
    assert live.keys() == from_copies.keys()
    for name, array in from_copies.items():
        assert live[name].dtype == array.dtype and np.array_equal(live[name], array), name


def _assert_equal_trees(left, right):
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and left.dtype == right.dtype and torch.equal(left, right)
    elif isinstance(left, dict):
        assert left.keys() == right.keys()  # an optimizer's integer keys stay integers
        for key in left:
            _assert_equal_trees(left[key], right[key])
    elif isinstance(left, (list, tuple)):
        assert type(left) is type(right) and len(left) == len(right)  # tuples stay tuples
        for a, b in zip(left, right, strict=True):
            _assert_equal_trees(a, b)
    else:
        assert left == right


def test_the_optimizer_part_comes_back_exactly_and_needs_no_pickle():
    state = _learner(["u1", "u2", "u1", "u3"] * 3).trainer_state()
    arrays = trainer_state.encode(state)
    assert trainer_state.LEARNER not in arrays  # no torch.save blob any more
    decoded = trainer_state.decode(arrays)
    _assert_equal_trees(state["dense_optimizer"], decoded["dense_optimizer"])
    assert decoded["clock"] == state["clock"]


def test_a_state_written_with_the_older_blob_still_decodes():
    state = _learner(["u1", "u2", "u1"]).trainer_state()
    arrays = trainer_state.encode(state)
    rest = trainer_state.decode(arrays)
    for name in [name for name in arrays if name.startswith("learner.")]:
        del arrays[name]
    blob = {key: value for key, value in rest.items() if key not in ("accumulators", "mappings")}
    blob[trainer_state.MAPPING_LIMITS] = {
        space: {name: mapping[name] for name in ("capacity", "admit_after", "expire_after")}
        for space, mapping in rest["mappings"].items()
    }
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    arrays[trainer_state.LEARNER] = np.frombuffer(buffer.getvalue(), dtype=np.uint8).copy()
    _assert_equal_trees(state["dense_optimizer"], trainer_state.decode(arrays)["dense_optimizer"])
