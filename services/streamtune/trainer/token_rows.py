"""Tokenized examples kept compactly in numpy, for the replay buffer and the holdout window.

A padded batch from the tokenizer costs 3 × int64 per position (24 bytes); a row here keeps
only the attended tokens, as uint16 ids when the vocabulary fits (else int32) and uint8 token
types, in one preallocated matrix: 3 bytes per position, no Python object per example, and a
size known in advance so the buffers can be bounded in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from streamtune.errors import ConfigurationError

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"
_SUPPORTED = {INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS}


def check_inputs(names: set[str]) -> None:
    """Fail fast for tokenizers whose inputs the compact rows cannot rebuild."""
    if INPUT_IDS not in names or ATTENTION_MASK not in names or not names <= _SUPPORTED:
        raise ConfigurationError(
            f"replay/holdout need input_ids and attention_mask (optionally token_type_ids); the "
            f"tokenizer gives {sorted(names)}: set STREAMTUNE_REPLAY_FRACTION=0 and "
            "STREAMTUNE_HOLDOUT_SHARE=0"
        )


@dataclass(frozen=True)
class RowFormat:
    """The shape of a tokenized row.

    Parameters
    ----------
    width
        Longest row (the tokenizer's ``max_length``).
    vocab_size
        Decides the id dtype: uint16 below 65,536, else int32.
    token_types
        Whether the model takes ``token_type_ids``.
    pad_id
        Token id used to pad rows when a batch is rebuilt.
    """

    width: int
    vocab_size: int
    token_types: bool
    pad_id: int

    @property
    def id_dtype(self) -> type[np.integer]:
        return np.uint16 if self.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32

    @property
    def bytes_per_row(self) -> int:
        id_bytes = np.dtype(self.id_dtype).itemsize
        return self.width * (id_bytes + (1 if self.token_types else 0)) + 4 + 4


class TokenRows:
    """A fixed-capacity table of tokenized examples with labels, ``capacity`` rows of ``form``
    allocated up front."""

    def __init__(self, capacity: int, form: RowFormat) -> None:
        self.capacity = capacity
        self.width = form.width
        self.pad_id = form.pad_id
        self.ids = np.zeros((capacity, form.width), dtype=form.id_dtype)
        self.types = np.zeros((capacity, form.width), dtype=np.uint8) if form.token_types else None
        self.lengths = np.zeros(capacity, dtype=np.int32)
        self.labels = np.zeros(capacity, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = [self.ids, self.lengths, self.labels] + ([self.types] if self.types is not None else [])
        return sum(array.nbytes for array in arrays)

    def put(self, slots: np.ndarray, inputs: dict[str, torch.Tensor], rows: np.ndarray, labels: np.ndarray) -> None:
        """Store ``rows`` of a padded batch (any padding side) into ``slots``."""
        mask = inputs[ATTENTION_MASK].numpy().astype(bool)
        ids = inputs[INPUT_IDS].numpy()
        types = inputs[TOKEN_TYPE_IDS].numpy() if self.types is not None else None
        for slot, row, label in zip(slots.tolist(), rows.tolist(), labels.tolist(), strict=True):
            attended = mask[row]
            length = int(attended.sum())
            self.lengths[slot] = length
            self.labels[slot] = label
            self.ids[slot, :length] = ids[row][attended]
            if types is not None:
                self.types[slot, :length] = types[row][attended]

    def copy_rows(self, source: TokenRows, source_slots: np.ndarray, slots: np.ndarray) -> None:
        """Copy rows from another table of the same shape."""
        self.ids[slots] = source.ids[source_slots]
        self.lengths[slots] = source.lengths[source_slots]
        self.labels[slots] = source.labels[source_slots]
        if self.types is not None and source.types is not None:
            self.types[slots] = source.types[source_slots]

    def batch(self, slots: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Rebuild a right-padded model batch (and its labels) from ``slots``."""
        lengths = self.lengths[slots]
        width = max(int(lengths.max(initial=0)), 1)
        attended = np.arange(width)[None, :] < lengths[:, None]
        ids = np.where(attended, self.ids[slots, :width], self.pad_id).astype(np.int64)
        inputs = {
            INPUT_IDS: torch.from_numpy(ids),
            ATTENTION_MASK: torch.from_numpy(attended.astype(np.int64)),
        }
        if self.types is not None:
            types = np.where(attended, self.types[slots, :width], 0).astype(np.int64)
            inputs[TOKEN_TYPE_IDS] = torch.from_numpy(types)
        return inputs, torch.from_numpy(self.labels[slots].copy())

    def state(self, slots: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        """The rows at ``slots`` as arrays to save (trimmed to the longest row)."""
        width = max(int(self.lengths[slots].max(initial=0)), 1)
        state = {
            f"{prefix}.ids": np.ascontiguousarray(self.ids[slots, :width]),
            f"{prefix}.lengths": self.lengths[slots].copy(),
            f"{prefix}.labels": self.labels[slots].copy(),
        }
        if self.types is not None:
            state[f"{prefix}.types"] = np.ascontiguousarray(self.types[slots, :width])
        return state

    def load_state(self, state: dict[str, np.ndarray], prefix: str, slots: np.ndarray) -> None:
        """Put rows saved by :meth:`state` into ``slots`` (as many as fit)."""
        ids = state[f"{prefix}.ids"]
        width = min(ids.shape[1], self.width)
        count = len(slots)
        self.ids[slots, :width] = ids[:count, :width]
        self.lengths[slots] = np.minimum(state[f"{prefix}.lengths"][:count], width)
        self.labels[slots] = state[f"{prefix}.labels"][:count]
        if self.types is not None and f"{prefix}.types" in state:
            self.types[slots, :width] = state[f"{prefix}.types"][:count, :width]


def concat_batches(
    first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], pad_id: int
) -> dict[str, torch.Tensor]:
    """Stack two right-padded batches with the same inputs, padding to the wider one."""
    width = max(first[INPUT_IDS].shape[1], second[INPUT_IDS].shape[1])
    stacked = {}
    for name in first:
        pad_value = pad_id if name == INPUT_IDS else 0
        parts = [
            torch.nn.functional.pad(part[name], (0, width - part[name].shape[1]), value=pad_value)
            for part in (first, second)
        ]
        stacked[name] = torch.cat(parts)
    return stacked
