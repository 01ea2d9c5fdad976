"""Versions of a hybrid model as plain dicts of tensors: full snapshots and deltas.

A snapshot holds every mapped row of both tables, their keys, the dense weights and the global
counts. A delta holds only the rows changed since the previous export (snapshot or delta), each
with the key that now holds it (``None``: the row was freed, e.g. by ``forget``), plus the
dense weights (small) and the global counts. With the slow path on, a version also carries the
encoder's adapters (``encoder``: version, LoRA shape, tensors) whenever they differ from those
the previous export shipped, and always in a snapshot. Applying a chain of deltas in order to a copy of
the parent snapshot reproduces the trainer's tables exactly. Serialisation
(:mod:`~streamtune.modeling.hybrid.payload_file`), hashes and manifests stay elsewhere; nothing
trainer-only is in here.
"""

from __future__ import annotations

import copy
from typing import Any

from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.id_mapping import IdMapping
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.table import EmbeddingRows
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder, TextEmbedder

FORMAT = 1
SNAPSHOT = "snapshot"
DELTA = "delta"


def export_snapshot(model: HybridModel) -> dict[str, Any]:
    """Everything a server needs to score; starts a new record of changed rows."""
    version = _common(model, SNAPSHOT)
    for side, mapping, table in _sides(model):
        table.take_dirty()
        keys_rows = mapping.items()
        version[side] = _rows_part(table, [row for _, row in keys_rows], [key for key, _ in keys_rows])
    return version


def export_delta(model: HybridModel) -> dict[str, Any]:
    """The rows changed since the previous export, with their current keys, and the dense part."""
    version = _common(model, DELTA)
    for side, mapping, table in _sides(model):
        rows = table.take_dirty()
        version[side] = _rows_part(table, rows, [mapping.key_of(row) for row in rows])
    return version


def load_snapshot(snapshot: dict[str, Any], embedder: TextEmbedder | None = None) -> HybridModel:
    """A model holding exactly the snapshot's tables and dense weights."""
    if snapshot.get("type") != SNAPSHOT or snapshot.get("format") != FORMAT:
        raise HybridModelError(f"not a hybrid snapshot of format {FORMAT}: {snapshot.get('type')!r}")
    model = HybridModel(HybridConfig.from_dict(snapshot["config"]), embedder)
    _sync_encoder(snapshot, model.embedder)
    for _, _, table in _sides(model):
        table.clear(list(range(table.capacity)))  # fresh rows are random; a snapshot is exact
    apply_rows_and_dense(model, snapshot)
    for _, _, table in _sides(model):
        table.take_dirty()
    return model


def apply_delta(model: HybridModel, delta: dict[str, Any]) -> None:
    """Apply one delta, in place; deltas must be applied in the order they were exported."""
    if delta.get("type") != DELTA or delta.get("format") != FORMAT:
        raise HybridModelError(f"not a hybrid delta of format {FORMAT}: {delta.get('type')!r}")
    if delta["config"] != model.config.to_dict():
        raise HybridModelError("delta was exported by a model of a different configuration")
    _sync_encoder(delta, model.embedder)
    apply_rows_and_dense(model, delta)


def applied_copy(model: HybridModel, delta: dict[str, Any]) -> HybridModel:
    """A copy of ``model`` with ``delta`` applied; the original keeps serving meanwhile."""
    embedder, model.embedder = model.embedder, None
    try:
        fresh = copy.deepcopy(model)
    finally:
        model.embedder = embedder
    fresh.embedder = embedder
    apply_delta(fresh, delta)
    return fresh


def apply_rows_and_dense(model: HybridModel, version: dict[str, Any]) -> None:
    """Write a version's rows (and their keys) and dense weights into ``model``."""
    for side, mapping, table in _sides(model):
        part = version[side]
        for key, row in zip(part["keys"], part["rows"].tolist(), strict=True):
            mapping.assign(key, row)
        if part["rows"].numel():
            table.load_rows(part)
    model.scorer.load_state_dict(version["dense"])
    model.global_counts = list(version["global_counts"])


def _common(model: HybridModel, kind: str) -> dict[str, Any]:
    common = {
        "format": FORMAT,
        "type": kind,
        "config": model.config.to_dict(),
        "encoder_version": model.embedder.version if model.embedder is not None else None,
        "dense": {name: tensor.detach().clone() for name, tensor in model.scorer.state_dict().items()},
        "global_counts": list(model.global_counts),
    }
    encoder = _encoder_part(model, full=kind == SNAPSHOT)
    return common if encoder is None else {**common, "encoder": encoder}


def _encoder_part(model: HybridModel, full: bool) -> dict[str, Any] | None:
    """The adapters to ship: in a snapshot whenever there are trained ones, in a delta only
    when they changed since the last export (the trainer's encoder remembers what it shipped)."""
    encoder = model.embedder.encoder if model.embedder is not None else None
    if not isinstance(encoder, SentenceEncoder):
        return None
    part = encoder.adapter_part()
    shipped, encoder.shipped_version = encoder.shipped_version, encoder.version
    return part if part is not None and (full or shipped != part["version"]) else None


def _sync_encoder(version: dict[str, Any], embedder: TextEmbedder | None) -> None:
    """Put a version's adapters on the encoder (a trainer resuming), then check the encoder is
    the one the version was trained with. A server passes an embedder already bound to the
    version's adapters (:mod:`streamtune.inference.text_cache`), so nothing is loaded here."""
    part = version.get("encoder")
    if part is not None and embedder is not None and embedder.version != part["version"]:
        embedder.encoder.load_adapter_part(part)
    _check_encoder(version, embedder)


def _rows_part(table: EmbeddingRows, rows: list[int], keys: list[str | None]) -> dict[str, Any]:
    part: dict[str, Any] = table.export_rows(rows)
    part["keys"] = keys
    return part


def _sides(model: HybridModel) -> list[tuple[str, IdMapping, EmbeddingRows]]:
    return [(space, model.mappings[space], model.tables[space]) for space in model.mappings]


def _check_encoder(version: dict[str, Any], embedder: TextEmbedder | None) -> None:
    wanted = version.get("encoder_version")
    if wanted is not None and embedder is not None and embedder.version != wanted:
        raise HybridModelError(f"version was trained with encoder {wanted!r}, this server has {embedder.version!r}")
