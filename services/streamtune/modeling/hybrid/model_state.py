"""States of a hybrid model: copying one cheaply (a snapshot at every publish) and scrubbing
users out of one (``streamtune forget`` reaching the snapshots the trainer still holds)."""

from __future__ import annotations

import copy

from streamtune.modeling.hybrid.id_mapping import IdMapping
from streamtune.modeling.hybrid.model import USER_KIND_SEPARATOR, HybridModel
from streamtune.modeling.hybrid.table import EmbeddingRows


def scrub_keys(model: HybridModel, user_keys: list[str]) -> int:
    """Remove these users' rows (and their (user, kind) rows) from ``model``; returns rows freed."""
    freed = 0
    for key in user_keys:
        row = model.users.remove(key)
        if row is not None:
            model.user_table.clear([row])
            freed += 1
        if "user_kinds" in model.mappings:
            prefix = f"{key}{USER_KIND_SEPARATOR}"
            for kind_key, _ in model.mappings["user_kinds"].items():
                if kind_key.startswith(prefix):
                    kind_row = model.mappings["user_kinds"].remove(kind_key)
                    if kind_row is not None:
                        model.tables["user_kinds"].clear([kind_row])
                        freed += 1
    return freed


def copy_model(model: HybridModel) -> HybridModel:
    """A copy of ``model``'s state (tables, key mappings, dense part, counts) sharing only what
    never changes (config, text buckets, the embedder is left out).

    ``copy.deepcopy`` walks every key of every mapping object by object; copying the
    mappings' dicts and cloning the tensors is many times faster, which matters because the
    trainer takes a snapshot at every publish.
    """
    copied = copy.copy(model)
    copied.embedder = None
    copied.mappings = {space: _copy_mapping(mapping) for space, mapping in model.mappings.items()}
    copied.tables = {space: _copy_table(table) for space, table in model.tables.items()}
    copied.scorer = copy.deepcopy(model.scorer)
    copied.global_counts = list(model.global_counts)
    return copied


def _copy_mapping(mapping: IdMapping) -> IdMapping:
    copied = copy.copy(mapping)
    copied._rows = mapping._rows.copy()
    copied._last_seen = mapping._last_seen.copy()
    copied._keys = mapping._keys.copy()
    copied._pending = mapping._pending.copy()
    copied._free = list(mapping._free)
    return copied


def _copy_table(table: EmbeddingRows) -> EmbeddingRows:
    copied = copy.copy(table)
    copied.weights = table.weights.clone()
    copied.counts = table.counts.clone()
    copied._dirty = set()
    return copied
