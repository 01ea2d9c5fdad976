"""Tensors of the Open Inference Protocol (v2) REST API, free of I/O: reading an inference
request (JSON, or JSON followed by binary tensor data) into texts, and writing the scores.

The binary tensor data extension (what Triton's clients send by default): the body starts with
``Inference-Header-Content-Length`` bytes of JSON; each input whose ``parameters`` carry
``binary_data_size`` takes that many of the following bytes, in order. A BYTES tensor is then a
sequence of elements, each a 4-byte little-endian length and that many bytes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TEXT, CONTEXT, USER_ID, ITEM_ID, SCORE = "text", "context", "user_id", "item_id", "score"
OPTIONAL_INPUTS = (CONTEXT, USER_ID, ITEM_ID)
# The binary header (request and response) and the content type of a response carrying one.
HEADER_LENGTH = "Inference-Header-Content-Length"


class TensorError(ValueError):
    """The request is not a valid inference request for this model (answered 400)."""


@dataclass(frozen=True)
class InferenceInputs:
    """One inference request, decoded: a text per row and, optionally, a context per row."""

    texts: list[str]
    contexts: list[str | None]
    request_id: str | None
    binary_output: bool
    user_ids: list[str | None] | None = None  # None: the input was not given
    item_ids: list[str | None] | None = None


def decode_request(body: bytes, header_length: str | None, max_rows: int, max_chars: int) -> InferenceInputs:
    """Parse an inference request; raises :class:`TensorError` naming the problem."""
    document, binary = _split(body, header_length)
    columns = _columns(document.get("inputs"), binary)
    rows = _check_rows(columns, max_rows, max_chars)
    # A tensor cannot hold a null: an empty context element means "no context", as in /v1.
    contexts = [context or None for context in columns[CONTEXT]] if CONTEXT in columns else [None] * rows
    request_id = document.get("id")
    # As for contexts, an empty id element means "no id" (a tensor holds no nulls).
    ids = {name: [value or None for value in columns[name]] if name in columns else None for name in (USER_ID, ITEM_ID)}
    return InferenceInputs(
        columns[TEXT],
        contexts,
        str(request_id) if request_id is not None else None,
        _wants_binary(document),
        ids[USER_ID],
        ids[ITEM_ID],
    )


def _columns(inputs: object, binary: bytes) -> dict[str, list[str]]:
    """Each input tensor's elements by name, from JSON ``data`` or the binary part."""
    if not isinstance(inputs, list) or not inputs:
        raise TensorError("the request needs an 'inputs' list")
    columns: dict[str, list[str]] = {}
    offset = 0
    for tensor in inputs:
        if not isinstance(tensor, Mapping):
            raise TensorError("each input must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        if name not in (TEXT, *OPTIONAL_INPUTS):
            raise TensorError(f"unknown input {str(name)[:40]!r}; inputs are {TEXT}, {', '.join(OPTIONAL_INPUTS)}")
        if tensor.get("datatype") != "BYTES":
            raise TensorError(f"input {name!r} must have datatype BYTES")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            values = _bytes_elements(binary[offset : offset + int(size)], name)
            offset += int(size)
        else:
            values = _json_elements(tensor.get("data"), name)
        if _count(tensor.get("shape"), name) != len(values):
            raise TensorError(f"input {name!r} has {len(values)} elements, its shape says otherwise")
        columns[name] = values
    if TEXT not in columns:
        raise TensorError(f"the input {TEXT!r} is required")
    return columns


def _check_rows(columns: Mapping[str, list[str]], max_rows: int, max_chars: int) -> int:
    """The number of rows, once every input is known to have one element per row within limits."""
    rows = len(columns[TEXT])
    if not 1 <= rows <= max_rows:
        raise TensorError(f"{TEXT!r} must hold between 1 and {max_rows} elements")
    for name, values in columns.items():
        if len(values) != rows:
            raise TensorError(f"input {name!r} has {len(values)} elements but {TEXT!r} has {rows}")
        if any(len(value) > max_chars for value in values):
            raise TensorError(f"an element of {name!r} is over {max_chars} characters")
    if any(not text for text in columns[TEXT]):
        raise TensorError(f"every element of {TEXT!r} must be non-empty")
    return rows


def encode_response(
    model_name: str, version: int, scores: Sequence[float], request_id: str | None, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON, or JSON followed by the FP32 scores."""
    output: dict[str, Any] = {"name": SCORE, "datatype": "FP32", "shape": [len(scores)]}
    raw = b""
    if binary:
        raw = np.asarray(scores, dtype="<f4").tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
    else:
        output["data"] = [float(score) for score in scores]
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(version), "outputs": [output]}
    if request_id is not None:
        document["id"] = request_id
    header = json.dumps(document).encode()
    if not binary:
        return header, {"Content-Type": "application/json"}
    return header + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def _split(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    cut = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise TensorError(f"{HEADER_LENGTH} must be the length of the JSON part of the body")
        cut = int(header_length)
    try:
        document = json.loads(body[:cut])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TensorError(f"the request is not valid JSON ({error.__class__.__name__})") from None
    if not isinstance(document, dict):
        raise TensorError("the request must be a JSON object")
    return document, body[cut:]


def _wants_binary(document: Mapping[str, Any]) -> bool:
    for output in document.get("outputs") or ():
        if isinstance(output, Mapping) and output.get("name") == SCORE:
            return bool((output.get("parameters") or {}).get("binary_data", False))
    return bool((document.get("parameters") or {}).get("binary_data_output", False))


def _count(shape: object, name: str) -> int:
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise TensorError(f"input {name!r} needs a shape: a list of non-negative integers")
    return math.prod(shape)


def _json_elements(data: object, name: str) -> list[str]:
    flat: list[object] = []
    stack = [data]
    while stack:  # row-major flattening of nested lists
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if not all(isinstance(value, str) for value in flat):
        raise TensorError(f"input {name!r} must hold strings (BYTES)")
    return [str(value) for value in flat]


def _bytes_elements(raw: bytes, name: str) -> list[str]:
    values, position = [], 0
    try:
        while position < len(raw):
            (length,) = struct.unpack_from("<I", raw, position)
            position += 4
            if position + length > len(raw):
                raise TensorError(f"the binary data of {name!r} is truncated")
            values.append(raw[position : position + length].decode("utf-8"))
            position += length
    except (struct.error, UnicodeDecodeError):
        raise TensorError(f"the binary data of {name!r} is not UTF-8 BYTES elements") from None
    return values
