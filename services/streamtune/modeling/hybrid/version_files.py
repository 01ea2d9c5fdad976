"""The files of a hybrid version in the checkpoint store, and reading a chain of them back.

A version directory holds, besides the trainer's own files:

``hybrid_model.safetensors``
    A snapshot or a delta as :mod:`streamtune.modeling.hybrid.versions` defines them (a dict
    of tensors, lists and numbers; see :mod:`streamtune.modeling.hybrid.payload_file`).
    Versions written before it hold ``hybrid_model.pt`` instead (read with
    ``torch.load(weights_only=True)``); both are read.
``hybrid_version.json``
    ``{"state_id", "type", "chain_length"}``: which in-memory state the version was written
    from, so the next export knows whether a delta against it is possible.
``text_cache.npz``
    Text embeddings the trainer computed (``keys``: sha256 of encoder version and text, no
    text; ``vectors``): all of them in a snapshot, those new since the parent in a delta. A
    server warms its cache from the chain it loads.

The manifest says ``model_kind: "hybrid"``; ``delta_of`` names the version a delta applies
onto (None for a snapshot) and ``chain_length`` counts deltas since the last snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamtune.checkpoints.manifest import MANIFEST_FILE, Manifest
from streamtune.checkpoints.retention import chain_of
from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.payload_file import read_payload_file, write_payload_file
from streamtune.modeling.hybrid.text_embeddings import EmbeddingCache, TextEmbedder
from streamtune.modeling.hybrid.versions import SNAPSHOT, apply_delta, load_snapshot

MODEL_FILE = "hybrid_model.safetensors"
LEGACY_MODEL_FILE = "hybrid_model.pt"
INFO_FILE = "hybrid_version.json"
CACHE_FILE = "text_cache.npz"

# The store's manifest of a version, and a local, verified directory of a version.
ManifestReader = Callable[[int], Manifest]
Checkout = Callable[[int], Path]


@dataclass(frozen=True)
class VersionInfo:
    """What ``hybrid_version.json`` records."""

    state_id: str
    type: str
    chain_length: int


def write_version(directory: Path, payload: dict[str, Any], info: VersionInfo) -> None:
    """The model file and its info file."""
    write_payload_file(directory / MODEL_FILE, payload)
    (directory / INFO_FILE).write_text(json.dumps(info.__dict__))


def model_file(directory: Path) -> Path:
    """Where a version directory keeps its snapshot or delta (the older name if that is there)."""
    legacy = directory / LEGACY_MODEL_FILE
    return legacy if legacy.is_file() and not (directory / MODEL_FILE).is_file() else directory / MODEL_FILE


def read_payload(directory: Path) -> dict[str, Any]:
    """A version's snapshot or delta dict."""
    path = model_file(directory)
    try:
        if path.name == LEGACY_MODEL_FILE:
            return torch.load(path, weights_only=True)
        return read_payload_file(path)
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise HybridModelError(f"{path} is not a hybrid version: {error}") from None


def read_info(directory: Path) -> VersionInfo | None:
    """The info of a version directory, or None when it has none (another family's version)."""
    try:
        data = json.loads((directory / INFO_FILE).read_text())
        return VersionInfo(str(data["state_id"]), str(data["type"]), int(data["chain_length"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_version_number(directory: Path) -> int | None:
    """The version number a published directory's manifest names."""
    try:
        return Manifest.from_json((directory / MANIFEST_FILE).read_bytes()).version
    except (OSError, ValueError):
        return None


def load_chain(
    manifest: Manifest,
    directory: Path,
    read_manifest: ManifestReader,
    checkout: Checkout,
    embedder: TextEmbedder | None,
) -> HybridModel:
    """The model of ``manifest``'s version: its snapshot, then every delta up to it in order.

    Cached embeddings of every version of the chain are added to ``embedder``'s cache.
    """
    versions = chain_of(manifest.version, lambda v: manifest if v == manifest.version else read_manifest(v))
    versions.reverse()
    model: HybridModel | None = None
    for version in versions:
        where = directory if version == manifest.version else checkout(version)
        payload = read_payload(where)
        if model is None:
            if payload.get("type") != SNAPSHOT:
                raise HybridModelError(f"version {version} starts a chain but is not a snapshot")
            model = load_snapshot(payload, embedder)
        else:
            apply_delta(model, payload)
        if embedder is not None and (where / CACHE_FILE).is_file():
            embedder.cache.load(where / CACHE_FILE)
    assert model is not None  # chain_of always returns at least the version itself
    return model


class RecordingCache(EmbeddingCache):
    """An embedding cache that remembers which keys were added since the last :meth:`take_new`,
    so a delta version ships only the new embeddings."""

    def __init__(self, capacity: int = 100_000) -> None:
        super().__init__(capacity)
        self._new: set[str] = set()

    def _insert(self, key: str, vector: np.ndarray) -> None:
        super()._insert(key, vector)
        self._new.add(key)

    def take_new(self) -> list[str]:
        new, self._new = sorted(self._new), set()
        return new
