"""Which old versions retention must keep: the snapshots (and deltas) a retained delta needs.

A delta is only usable on top of the version it was taken against (``Manifest.delta_of``), and
that one may itself be a delta; removing any link of the chain would leave every later delta
unloadable. Retention keeps the newest ``keep_versions`` versions plus every version their
chains reach back to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

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
