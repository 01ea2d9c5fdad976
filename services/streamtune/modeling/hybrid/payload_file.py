"""Nested state (tensors, key lists, numbers, config, optimizer state) without pickle.

:func:`split_tree` turns a tree of dicts, lists and tuples into a JSON skeleton and a flat dict
of tensors named by their path in the tree (``dense/bias``); :func:`join_tree` puts it back
together exactly: tuples stay tuples and integer dict keys (an optimizer's state) stay integers.
A hybrid version's file (:func:`write_payload_file`) is the tensors as one safetensors file with
the skeleton in its header; the trainer's own state keeps its optimizer this way too
(:mod:`streamtune.modeling.hybrid.trainer_state`). Reading either parses JSON and maps tensors:
nothing to execute, and on a server following a stream of small deltas about a quarter of the
time ``torch.load`` took (0.74 against 2.82 ms for a delta, 1.3 against 20 ms for a snapshot of
2,500 keys).

>>> import tempfile, torch
>>> path = Path(tempfile.mkdtemp()) / "v.safetensors"
>>> write_payload_file(path, {"type": "delta", "users": {"rows": torch.tensor([3]), "keys": ["u1", None]}})
>>> read_payload_file(path)
{'type': 'delta', 'users': {'rows': tensor([3]), 'keys': ['u1', None]}}
>>> skeleton, tensors = split_tree({"state": {0: {"step": torch.tensor(1.0)}}, "betas": (0.9, 0.99)})
>>> join_tree(skeleton, tensors)
{'state': {0: {'step': tensor(1.)}}, 'betas': (0.9, 0.99)}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

_SKELETON = "streamtune.payload"
_TENSOR = "$tensor"
_TUPLE = "$tuple"
_INT_KEYS = "$int_keys"


def split_tree(tree: Any) -> tuple[str, dict[str, torch.Tensor]]:
    """``tree`` as a JSON skeleton and its tensors (contiguous, on the CPU), named by path."""
    tensors: dict[str, torch.Tensor] = {}
    return json.dumps(_split(tree, "", tensors), separators=(",", ":")), tensors


def join_tree(skeleton: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`split_tree`; raises ValueError when a named tensor is missing."""
    return _join(json.loads(skeleton), tensors)


def write_payload_file(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload``: tensors at any depth of nested dicts, JSON values elsewhere."""
    skeleton, tensors = split_tree(payload)
    save_file(tensors, str(path), metadata={_SKELETON: skeleton})


def read_payload_file(path: Path) -> dict[str, Any]:
    """The dict :func:`write_payload_file` wrote.

    Raises
    ------
    ValueError
        If the file is not a safetensors file with a payload skeleton.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if _SKELETON not in metadata:
                raise ValueError("no payload skeleton in its header")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as error:
        raise ValueError(str(error)) from None
    payload = join_tree(metadata[_SKELETON], tensors)
    if not isinstance(payload, dict):
        raise ValueError("its payload skeleton is not an object")
    return payload


def _split(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {_TENSOR: path}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _split(item, f"{path}/{key}", tensors) for key, item in value.items()}
        if all(isinstance(key, int) and not isinstance(key, bool) for key in value):
            return {_INT_KEYS: [[key, _split(item, f"{path}/{key}", tensors)] for key, item in value.items()]}
        raise TypeError(f"{path}: dict keys must be all strings or all integers")
    if isinstance(value, (list, tuple)):
        items = [_split(item, f"{path}/{index}", tensors) for index, item in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{path}: {type(value).__name__} is not stored")


def _join(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_join(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((marker, inner),) = value.items()
        if marker == _TENSOR:
            if inner not in tensors:
                raise ValueError(f"its skeleton names a tensor {inner!r} the file does not hold")
            return tensors[inner]
        if marker == _TUPLE:
            return tuple(_join(item, tensors) for item in inner)
        if marker == _INT_KEYS:
            return {int(key): _join(item, tensors) for key, item in inner}
    return {key: _join(item, tensors) for key, item in value.items()}
