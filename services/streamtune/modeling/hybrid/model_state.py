"""Which rows differ between two states of a hybrid model, and scrubbing users out of one.

A delta must carry every row whose values, counts or key changed since the state its parent
version holds. Comparing the two states (rather than trusting a table's own record of
changed rows, which the next export empties) keeps that right however often the trainer
exported, failed to publish or rolled back in between.
"""

from __future__ import annotations

import torch

from streamtune.modeling.hybrid.model import USER_KIND_SEPARATOR, HybridModel


def changed_rows(old: HybridModel, new: HybridModel) -> dict[str, list[int]]:
    """Per key space, the sorted rows whose weights, counts or key differ from ``old`` to ``new``."""
    changed: dict[str, list[int]] = {}
    for space, table in new.tables.items():
        before = old.tables[space]
        differs = (table.weights != before.weights).any(1) | (table.counts != before.counts).any(1)
        rows = set(torch.nonzero(differs).flatten().tolist())
        moved = set(old.mappings[space].items()) ^ set(new.mappings[space].items())
        rows.update(row for _, row in moved)
        changed[space] = sorted(rows)
    return changed


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
