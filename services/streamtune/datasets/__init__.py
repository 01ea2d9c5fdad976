"""Converters from public datasets into streamtune's event stream."""

from streamtune.datasets.errors import DatasetError
from streamtune.datasets.jsonl import read_jsonl, write_jsonl
from streamtune.datasets.movielens import (
    detect_layout,
    load_movielens,
    movielens_events,
)

__all__ = [
    "DatasetError",
    "detect_layout",
    "load_movielens",
    "movielens_events",
    "read_jsonl",
    "write_jsonl",
]
