"""Walk a version's lineage and account for every event it consumed.

The lineage of version V is V, its parent, the parent's parent, … back to the first version.
Rollbacks leave abandoned versions in the store; they are not part of the lineage of what is
served, so the audit follows ``parent_version`` rather than version numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError
from streamtune.trainer.versions.files import read_events


@dataclass
class LineageAudit:
    """Every event id the lineage trained or discarded, in version order (oldest first)."""

    versions: list[int] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    held_out: int = 0
    duplicates: int = 0
    # False when an ancestor is missing (pruned by retention): the audit covers a suffix only.
    complete: bool = True

    def repeated(self) -> dict[str, int]:
        """Event ids trained or discarded more than once (must be empty)."""
        counts = Counter(self.trained) + Counter(self.discarded)
        return {event_id: count for event_id, count in counts.items() if count > 1}


def audit_lineage(store: CheckpointStore, version: int | None = None) -> LineageAudit:
    """Audit the lineage of ``version`` (default: the one LATEST names), verifying each file."""
    audit = LineageAudit()
    current = store.latest_version() if version is None else version
    chain = []
    while current is not None:
        try:
            checked_out = store.checkout(current)  # verified, and local even when the store is not
        except CheckpointError:
            if not chain:
                raise
            audit.complete = False
            break
        chain.append((checked_out.manifest, read_events(checked_out.directory)))
        current = checked_out.manifest.parent_version
    for manifest, events in reversed(chain):
        audit.versions.append(manifest.version)
        audit.trained.extend(events.trained)
        audit.discarded.extend(events.discarded)
        audit.held_out += events.held_out
        audit.duplicates += events.duplicates
    return audit
