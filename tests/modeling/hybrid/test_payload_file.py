"""A hybrid version's file: every part of a snapshot or delta comes back as written, versions
written in the older pickle format still load, and a damaged file is an error, not a guess."""

from __future__ import annotations

import pytest
import torch

from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.payload_file import read_payload_file, write_payload_file
from streamtune.modeling.hybrid.version_files import LEGACY_MODEL_FILE, MODEL_FILE, read_payload
from streamtune.modeling.hybrid.versions import apply_delta, export_delta, export_snapshot, load_snapshot


def _trained_model() -> HybridModel:
    model = HybridModel(HybridConfig(use_text=False, user_rows=64, item_rows=64))
    for index in range(20):
        user, item = model.mappings["users"], model.mappings["items"]
        user.assign(f"u{index % 7}", index % 7)
        item.assign(f"i{index}", index)
    model.tables["users"].mark_dirty(torch.arange(7))
    model.tables["items"].mark_dirty(torch.arange(20))
    return model


def _assert_same(left: object, right: object) -> None:
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor)
        assert left.dtype == right.dtype and torch.equal(left, right)
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys()
        for key in left:
            _assert_same(left[key], right[key])
    elif isinstance(left, tuple):
        assert list(left) == list(right)
    else:
        assert left == right


def test_snapshot_and_delta_round_trip_exactly(tmp_path):
    model = _trained_model()
    snapshot = export_snapshot(model)
    model.mappings["items"].remove("i3")  # a freed row travels as a None key
    model.tables["items"].mark_dirty(torch.tensor([3, 5]))
    delta = export_delta(model)
    assert None in delta["items"]["keys"]
    for name, payload in (("snapshot", snapshot), ("delta", delta)):
        path = tmp_path / f"{name}.safetensors"
        write_payload_file(path, payload)
        _assert_same(payload, read_payload_file(path))
    # Read back, the chain rebuilds the model: the JSON config (lists, not tuples) still matches.
    rebuilt = load_snapshot(read_payload_file(tmp_path / "snapshot.safetensors"))
    apply_delta(rebuilt, read_payload_file(tmp_path / "delta.safetensors"))
    assert "i3" not in rebuilt.mappings["items"] and "i4" in rebuilt.mappings["items"]
    assert torch.equal(rebuilt.tables["items"].weights[5], model.tables["items"].weights[5])


def test_nested_tensors_empty_tensors_and_plain_values(tmp_path):
    payload = {
        "dense": {"mlp.0.weight": torch.randn(3, 2), "flag": torch.tensor([True, False])},
        "rows": torch.zeros(0, dtype=torch.long),
        "keys": ["ü-1", None, "x\x1fy"],
        "counts": [1.5, 2.0],
        "name": None,
    }
    write_payload_file(tmp_path / "v.safetensors", payload)
    _assert_same(payload, read_payload_file(tmp_path / "v.safetensors"))


def test_versions_written_in_the_older_format_still_load(tmp_path):
    snapshot = export_snapshot(_trained_model())
    torch.save(snapshot, tmp_path / LEGACY_MODEL_FILE)
    _assert_same(snapshot, read_payload(tmp_path))


def test_a_damaged_or_foreign_file_is_a_clear_error(tmp_path):
    write_payload_file(tmp_path / MODEL_FILE, export_snapshot(_trained_model()))
    raw = bytearray((tmp_path / MODEL_FILE).read_bytes())
    (tmp_path / MODEL_FILE).write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(HybridModelError, match="is not a hybrid version"):
        read_payload(tmp_path)
    from safetensors.torch import save_file

    save_file({"weight": torch.ones(2)}, str(tmp_path / MODEL_FILE))  # a safetensors file, not ours
    with pytest.raises(HybridModelError, match="no payload skeleton"):
        read_payload(tmp_path)
