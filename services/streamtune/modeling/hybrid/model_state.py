"""States of a hybrid model: copying one cheaply (a snapshot at every publish) and scrubbing
users out of one (``streamtune forget`` reaching the snapshots the trainer still holds)."""

from __future__ import annotations

import copy

from streamtune.modeling.hybrid.model import USER_KIND_SEPARATOR, HybridModel


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


def copy_model(model: HybridModel, *, keep_embedder: bool = False) -> HybridModel:
    """A copy of ``model``'s state (tables, key mappings, dense part, counts) sharing only what
    never changes (config, text buckets; the embedder only with ``keep_embedder``).

    ``copy.deepcopy`` walks every key of every mapping object by object; copying the
    mappings' dicts and cloning the tensors is many times faster, which matters because the
    trainer takes a snapshot at every publish and a server copies its tables for deltas.
    """
    copied = copy.copy(model)
    if not keep_embedder:
        copied.embedder = None
    copied.mappings = {space: mapping.copy() for space, mapping in model.mappings.items()}
    copied.tables = {space: table.copy() for space, table in model.tables.items()}
    copied.scorer = copy.deepcopy(model.scorer)
    copied.global_counts = list(model.global_counts)
    return copied
