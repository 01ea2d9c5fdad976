"""Which old versions retention must keep: the snapshots (and deltas) a retained delta needs.

A delta is only usable on top of the version it was taken against (``Manifest.delta_of``), and
that one may itself be a delta; removing any link of the chain would leave every later delta
unloadable. Retention keeps the newest ``keep_versions`` versions plus every version their
chains reach back to.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from streamtune.checkpoints.manifest import Manifest
from streamtune.errors import CheckpointError

logger = logging.getLogger(__name__)


def chain_of(version: int, read_manifest: Callable[[int], Manifest]) -> list[int]:
    """``version`` and the versions it is applied onto, newest first, down to a full snapshot."""
    chain = [version]
    manifest = read_manifest(version)
    while manifest.delta_of is not None:
        chain.append(manifest.delta_of)
        manifest = read_manifest(manifest.delta_of)
    return chain


def needed_versions(retained: Iterable[int], read_manifest: Callable[[int], Manifest]) -> set[int]:
    """Every version the ``retained`` ones need to be loaded (themselves included).

    A manifest that cannot be read stops its chain (it is logged): retention then keeps what it
    can prove is needed and never deletes on a guess beyond the plain count.
    """
    needed: set[int] = set()
    for version in retained:
        # A chain stops at the first version already known to be needed: its own chain was
        # followed then (retention runs with every publish, so it reads each manifest once).
        link: int | None = version
        try:
            while link is not None and link not in needed:
                needed.add(link)
                link = read_manifest(link).delta_of
        except CheckpointError as error:
            logger.warning("retention could not follow the delta chain of version %d: %s", version, error)
    return needed


class DeferredRemoval:
    """Directories already out of the store (renamed out of the version namespace) whose files are
    deleted a few per call, oldest first.

    Retention frees a whole delta chain at once when its last needed version ages out: at a
    snapshot every 100 versions, 100 directories, whose deletion took 0.1–0.2 s of the trainer's
    loop in one publish. Spread over the next publishes, each takes a few milliseconds. A
    directory still waiting when the process stops is a ``.tmp-`` leftover, swept at the next
    start."""

    def __init__(self, per_call: int = 4) -> None:
        self.per_call = per_call
        self._waiting: deque[Path] = deque()

    def add(self, directory: Path) -> None:
        self._waiting.append(directory)

    def remove_some(self, limit: int | None = None) -> None:
        """Delete up to ``limit`` (default ``per_call``) waiting directories, oldest first."""
        budget = self.per_call if limit is None else limit
        while budget > 0 and self._waiting:
            directory = self._waiting.popleft()
            if directory.exists():  # else deleted already (remove_pruned, a sweep at start)
                try:
                    shutil.rmtree(directory)
                except OSError as error:
                    logger.warning("could not delete %s, an old version: %s", directory, error)
                budget -= 1

    def remove_all(self, leftovers: Iterable[Path] = ()) -> None:
        """Delete every waiting directory now, and ``leftovers`` (left waiting by another process)."""
        self._waiting.extend(leftovers)
        self.remove_some(len(self._waiting))
