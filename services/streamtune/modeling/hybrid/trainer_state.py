"""The hybrid learner's trainer-only state as flat arrays, for ``stream_state.safetensors``.

Saved with every version under ``family.`` (see :mod:`streamtune.trainer.versions.files`), read
only by a trainer resuming from that version, never by ``serve``: the Adagrad accumulators of
each table (the rows that left their initial value, and their values); the row assignments,
last-seen clocks and admission counters of every key space as flat arrays (keys as UTF-8 bytes
with their end offsets); and the rest (the AdamW moments of the dense part, the key spaces'
limits, the learner's clock) as a JSON skeleton (``learner.skeleton``, UTF-8 bytes) and its
tensors (``learner.tensors/...``), see :func:`~streamtune.modeling.hybrid.payload_file.split_tree`:
no pickle, and 0.3 ms a version where ``torch.save`` took 1.5 ms for it. Files written
before keep that part as one ``torch.save`` blob (``learner``), read with ``weights_only=True``.
The key spaces stay out of it because serialising tens of thousands of keys as objects with
every version cost ~9 ms a version.
"""

from __future__ import annotations

import io
from operator import itemgetter
from typing import Any

import numpy as np
import torch

from streamtune.modeling.hybrid.id_mapping import IdMapping, MappingColumns
from streamtune.modeling.hybrid.payload_file import join_tree, split_tree

ACCUMULATORS = "accumulators."
MAPPINGS = "mappings."
MAPPING_LIMITS = "mapping_limits"
INITIAL_ACCUMULATOR = 0.1  # SparseAdagrad's default: a fresh or freed row's accumulators
LEARNER = "learner"  # the older torch.save blob
LEARNER_SKELETON = "learner.skeleton"
LEARNER_TENSORS = "learner.tensors"
_LIMITS = ("capacity", "admit_after", "expire_after")


def encode(state: dict[str, Any], initial: float = INITIAL_ACCUMULATOR) -> dict[str, np.ndarray]:
    """:meth:`HybridLearner.trainer_state` → arrays. Accumulators are kept only for rows that
    left their initial value (``<space>.rows`` and ``<space>.values``): a table's budget is
    far larger than the rows in use, and this file is written with every version."""
    arrays: dict[str, np.ndarray] = {}
    for space, accumulators in state["accumulators"].items():
        if isinstance(accumulators, tuple):  # already sparse (as decode() gives it)
            rows, values = accumulators
        else:
            rows = torch.nonzero((accumulators != initial).any(1)).flatten()
            values = accumulators[rows]
        arrays[f"{ACCUMULATORS}{space}.rows"] = rows.numpy()
        arrays[f"{ACCUMULATORS}{space}.values"] = values.numpy()
    rest = {key: value for key, value in state.items() if key not in ("accumulators", "mappings")}
    rest[MAPPING_LIMITS] = {}
    for space, mapping in state["mappings"].items():
        if isinstance(mapping, IdMapping):
            arrays.update(_columns_arrays(f"{MAPPINGS}{space}.", mapping.columns()))
            limits = {name: getattr(mapping, name) for name in _LIMITS}
        else:
            arrays.update(_mapping_arrays(f"{MAPPINGS}{space}.", mapping))
            limits = {name: mapping[name] for name in _LIMITS}
        rest[MAPPING_LIMITS][space] = limits
    skeleton, tensors = split_tree(rest)
    arrays[LEARNER_SKELETON] = np.frombuffer(skeleton.encode(), dtype=np.uint8).copy()
    arrays.update({f"{LEARNER_TENSORS}{name}": tensor.numpy() for name, tensor in tensors.items()})
    return arrays


def decode(arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Arrays written by :func:`encode` → the learner's state, accumulators as
    ``{space: (rows, values)}`` (:func:`expand` makes whole tables of them); None when there
    are none (a version written by another family, or before this state was kept)."""
    if LEARNER_SKELETON in arrays:
        tensors = {
            name[len(LEARNER_TENSORS) :]: torch.from_numpy(np.array(array))
            for name, array in arrays.items()
            if name.startswith(LEARNER_TENSORS)
        }
        state: dict[str, Any] = join_tree(bytes(arrays[LEARNER_SKELETON]).decode(), tensors)
    elif LEARNER in arrays:
        state = torch.load(io.BytesIO(arrays[LEARNER].tobytes()), weights_only=True)
    else:
        return None
    if MAPPING_LIMITS in state:  # else a file whose key spaces are in the blob
        limits = state.pop(MAPPING_LIMITS)
        state["mappings"] = {
            space: {**space_limits, **_mapping_of(f"{MAPPINGS}{space}.", arrays)}
            for space, space_limits in limits.items()
        }
    spaces = {key[len(ACCUMULATORS) :].rsplit(".", 1)[0] for key in arrays if key.startswith(ACCUMULATORS)}
    state["accumulators"] = {
        space: (
            torch.from_numpy(np.array(arrays[f"{ACCUMULATORS}{space}.rows"])),
            torch.from_numpy(np.array(arrays[f"{ACCUMULATORS}{space}.values"])),
        )
        for space in spaces
    }
    return state


def expand(
    sparse: tuple[torch.Tensor, torch.Tensor], like: torch.Tensor, initial: float = INITIAL_ACCUMULATOR
) -> torch.Tensor:
    """Whole accumulators shaped as ``like``: the saved rows, every other row initial."""
    rows, values = sparse
    full = torch.full_like(like, initial)
    full[rows] = values
    return full


def held_rows(
    sparse: tuple[torch.Tensor, torch.Tensor], width: int, initial: float = INITIAL_ACCUMULATOR
) -> torch.Tensor:
    """The accumulators of every row up to the last saved one (the others initial): what
    :meth:`HybridLearner.load_trainer_state` takes; rows above keep their initial value."""
    rows, values = sparse
    held = torch.full((int(rows.max()) + 1 if rows.numel() else 0, width), initial, dtype=values.dtype)
    held[rows] = values
    return held


def _mapping_arrays(prefix: str, mapping: dict[str, Any]) -> dict[str, np.ndarray]:
    """An :meth:`IdMapping.state_dict` as arrays: admitted keys in order with their rows and
    last-seen clocks, and the pending keys with their sightings."""
    pairs = mapping["rows"]
    admitted = list(map(itemgetter(0), pairs))
    last_seen = mapping["last_seen"]
    clocks = last_seen.values() if list(last_seen) == admitted else map(last_seen.__getitem__, admitted)
    return _columns_arrays(prefix, MappingColumns(admitted, map(itemgetter(1), pairs), clocks, mapping["pending"]))


def _columns_arrays(prefix: str, columns: MappingColumns) -> dict[str, np.ndarray]:
    """The arrays of :func:`_mapping_arrays`, from the mapping's columns.

    Written with every version, so every pass over the keys runs in C (``np.fromiter`` over dict
    views, one ``join`` of the keys): Python loops over them cost ~8 ms a version at 10,000
    keys, and copying the live mapping into plain values first (``state_dict``) ~2 ms more."""
    admitted, pending = list(columns.keys), columns.pending
    return {
        **_keys_arrays(f"{prefix}keys", admitted),
        f"{prefix}rows": np.fromiter(columns.rows, np.int64, len(admitted)),
        f"{prefix}last_seen": np.fromiter(columns.last_seen, np.int64, len(admitted)),
        **_keys_arrays(f"{prefix}pending", list(pending)),
        f"{prefix}pending_counts": np.fromiter(pending.values(), np.int64, len(pending)),
    }


def _mapping_of(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The inverse of :func:`_mapping_arrays` (limits aside)."""
    admitted = _keys_of(f"{prefix}keys", arrays)
    pending = _keys_of(f"{prefix}pending", arrays)
    rows = np.asarray(arrays[f"{prefix}rows"]).tolist()
    return {
        "rows": list(zip(admitted, rows, strict=True)),
        "last_seen": dict(zip(admitted, np.asarray(arrays[f"{prefix}last_seen"]).tolist(), strict=True)),
        "pending": dict(zip(pending, np.asarray(arrays[f"{prefix}pending_counts"]).tolist(), strict=True)),
    }


def _keys_arrays(name: str, keys: list[str]) -> dict[str, np.ndarray]:
    joined = "".join(keys)
    if joined.isascii():  # ids usually are: a character is a byte, and one encode does all
        data, sized = joined.encode("ascii"), keys
    else:
        sized = [key.encode("utf-8") for key in keys]
        data = b"".join(sized)
    ends = np.cumsum(np.fromiter(map(len, sized), np.int64, len(sized)), dtype=np.int64)
    return {name: np.frombuffer(data, dtype=np.uint8).copy(), f"{name}_ends": ends}


def _keys_of(name: str, arrays: dict[str, np.ndarray]) -> list[str]:
    data = np.asarray(arrays[name]).tobytes()
    ends = np.asarray(arrays[f"{name}_ends"]).tolist()
    starts = [0, *ends][: len(ends)]
    return [data[start:end].decode("utf-8") for start, end in zip(starts, ends, strict=True)]
