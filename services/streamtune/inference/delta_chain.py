"""Load hybrid versions: a full snapshot, or deltas applied in order onto the model they extend.

A delta's manifest names the version it extends (``delta_of``). To build version *v*, the
loader walks that chain back from *v* until it reaches either the version it built last (the
one being served, normally *v*'s parent) or a full snapshot, then applies the deltas oldest
first. Every file is verified against its manifest by the store's checkout, as for any version.

Deltas are applied to a copy of the served model's tables, never to the served ones: requests
in flight keep scoring on the version they started with, and the new version becomes visible
only through the slot's one reference assignment. The copy is cheap (tensor copies and
C-level dict copies, see :func:`clone_model`), unlike a ``deepcopy`` of the key mappings.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict
from pathlib import Path

from streamtune.checkpoints import VersionStore
from streamtune.checkpoints.manifest import Manifest
from streamtune.errors import CheckpointError, ModelLoadError
from streamtune.inference.hybrid_model import HybridRow, HybridServed
from streamtune.inference.text_cache import ServerTexts
from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.id_mapping import IdMapping
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.table import EmbeddingRows
from streamtune.modeling.hybrid.version_files import CACHE_FILE, read_payload
from streamtune.modeling.hybrid.versions import apply_delta, load_snapshot

logger = logging.getLogger(__name__)

HYBRID = "hybrid"
_WARMUP = (HybridRow(text="a short item text"), HybridRow(user="?", item="?", text="another item text"))


class HybridLoader:
    """Builds :class:`HybridServed` objects for versions of one store.

    ``texts`` holds the server's encoder and text caches, shared by every version it loads.
    """

    def __init__(self, store: VersionStore, texts: ServerTexts) -> None:
        self._store = store
        self._texts = texts
        self._last: HybridServed | None = None
        self.last_chain: list[int] = []  # versions whose files the last load read, oldest first

    def load(self, version: int) -> HybridServed:
        """Load ``version`` (0: an untrained model); raises :class:`ModelLoadError`."""
        started = time.perf_counter()
        try:
            served = self._untrained() if version == 0 else self._build(version)
        except CheckpointError as error:
            raise ModelLoadError(str(error)) from error
        except (HybridModelError, RuntimeError, ValueError, KeyError, OSError) as error:
            raise ModelLoadError(f"hybrid version {version} could not be built: {error}") from error
        scores = served.score_rows(list(_WARMUP))
        if not all(0.0 <= score <= 1.0 for score in scores):
            raise ModelLoadError(f"version {version} produced invalid scores on warm-up")
        self._last = served
        logger.info(
            "loaded hybrid version %d (%s) in %.3f s",
            version,
            "+".join(map(str, self.last_chain)) or "untrained",
            time.perf_counter() - started,
        )
        return served

    def _untrained(self) -> HybridServed:
        self.last_chain = []
        config = HybridConfig(text_dim=self._texts.dim, user_rows=1, item_rows=1)
        manifest = {"version": 0, "model_kind": HYBRID, "base_model": self._texts.version, "tuning": None}
        return HybridServed(0, manifest, HybridModel(config, self._texts.embedder), self._texts)

    def _build(self, version: int) -> HybridServed:
        chain, base = self._chain(version)  # newest first
        if base is not None and self._last is not None:
            model, applied = clone_model(self._last.model), []
        else:
            snapshot = self._store.checkout(chain.pop().version)
            model = self._from_snapshot(snapshot.directory)
            self._texts.warm(snapshot.directory / CACHE_FILE)
            applied = [snapshot.manifest.version]
        for manifest in reversed(chain):
            delta = self._store.checkout(manifest.version)
            apply_delta(model, read_payload(delta.directory))
            self._texts.warm(delta.directory / CACHE_FILE)
            applied.append(manifest.version)
        self.last_chain = applied
        top = self._store.read_manifest(version)
        return HybridServed(version, asdict(top), model, self._texts)

    def _chain(self, version: int) -> tuple[list[Manifest], int | None]:
        """Manifests from ``version`` back to a full snapshot, or back to (excluding) the version
        built last if it lies on the chain; that version is returned second (else None)."""
        last = self._last.version if self._last is not None else None
        chain: list[Manifest] = []
        current: int | None = version
        while current is not None:
            if current == last and chain:
                return chain, last
            manifest = self._store.read_manifest(current)
            if manifest.model_kind != HYBRID:
                raise ModelLoadError(f"version {current} is of model family {manifest.model_kind!r}, not hybrid")
            chain.append(manifest)
            current = manifest.delta_of
        return chain, None

    def _from_snapshot(self, directory: Path) -> HybridModel:
        snapshot = read_payload(directory)
        use_text = bool(snapshot["config"].get("use_text", True))
        return load_snapshot(snapshot, self._texts.embedder if use_text else None)


def clone_model(model: HybridModel) -> HybridModel:
    """An independent copy of ``model``'s tables, mappings and dense part (shares the encoder
    and the fixed text buckets, which no version changes)."""
    fresh = copy.copy(model)
    fresh.mappings = {space: _clone_mapping(mapping) for space, mapping in model.mappings.items()}
    fresh.tables = {space: _clone_table(table) for space, table in model.tables.items()}
    fresh.scorer = copy.deepcopy(model.scorer)
    fresh.global_counts = list(model.global_counts)
    return fresh


def _clone_mapping(mapping: IdMapping) -> IdMapping:
    """A copy for serving and applying deltas: the key -> row dict loses its LRU order (a plain
    dict copies in C, an ordered one key by key: 50 ms for 50,000 keys). A server never evicts
    or observes keys; it only looks rows up and assigns what a delta says, which need no order."""
    fresh = copy.copy(mapping)
    fresh._rows = dict(mapping._rows)  # type: ignore[assignment]
    fresh._last_seen = dict(mapping._last_seen)
    fresh._keys = dict(mapping._keys)
    fresh._pending = dict(mapping._pending)
    fresh._free = list(mapping._free)
    return fresh


def _clone_table(table: EmbeddingRows) -> EmbeddingRows:
    fresh = copy.copy(table)
    fresh.weights = table.weights.clone()
    fresh.counts = table.counts.clone()
    fresh._dirty = set()
    return fresh
