"""Load hybrid versions: a full snapshot, or deltas applied in order onto the model they extend.

A delta's manifest names the version it extends (``delta_of``). To build version *v*, the
loader walks that chain back from *v* until it reaches either the version it built last (the
one being served, normally *v*'s parent) or a full snapshot, then applies the deltas oldest
first. Every file is verified against its manifest by the store's checkout, as for any version.

Deltas are never applied to the served tables: requests in flight keep scoring on the version
they started with, and the new version becomes visible only through the slot's one reference
assignment. They go to a second set of tables instead (double buffering): the tables of the
version served before, retired by the swap, brought up to date with the deltas they missed and
then the new ones. So each delta is applied twice and nothing of table size is copied. Tables
are taken over only when no batch is scoring on them (:class:`Readers`); otherwise, and for the
first delta after a snapshot, the served tables are copied (:func:`clone_model`: tensor copies
and C-level dict copies, unlike a ``deepcopy`` of the key mappings).

A version that ships new encoder adapters (the trainer's slow path) is bound to its own view of
the text caches (:meth:`ServerTexts.bound_to`): its item texts are embedded with its adapters,
under its encoder version, while the version before keeps its own until it is retired.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamtune.checkpoints import VersionStore
from streamtune.checkpoints.manifest import TRAINER_ONLY_FILES, Manifest
from streamtune.errors import CheckpointError, ModelLoadError
from streamtune.inference.hybrid_model import HybridRow, HybridServed
from streamtune.inference.text_cache import ServerTexts
from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.model_state import copy_model
from streamtune.modeling.hybrid.version_files import CACHE_FILE, read_payload
from streamtune.modeling.hybrid.versions import apply_delta, load_snapshot

logger = logging.getLogger(__name__)

HYBRID = "hybrid"
_WARMUP = (HybridRow(text="a short item text"), HybridRow(user="?", item="?", text="another item text"))


class HybridLoader:
    """Builds :class:`HybridServed` objects for versions of one store.

    ``texts`` holds the server's encoder and text caches, shared by every version it loads.
    :meth:`load` is for the slot (versions it serves, one after another); :meth:`load_detached`
    for anything else (an older version asked for by name), which never reuses tables.
    """

    def __init__(self, store: VersionStore, texts: ServerTexts) -> None:
        self._store = store
        self._texts = texts
        self._last: HybridServed | None = None
        # The version served before the last one, whose tables the next delta may take over,
        # and the deltas that bring them to the last one (see the module docstring).
        self._spare: HybridServed | None = None
        self._spare_behind: list[dict[str, Any]] = []
        self.last_chain: list[int] = []  # versions whose files the last load read, oldest first
        self.reused_tables = 0  # loads that took over a retired version's tables (no copy)

    def load(self, version: int) -> HybridServed:
        """Load ``version`` (0: an untrained model) to be served next; raises :class:`ModelLoadError`."""
        previous = self._last
        served, on_previous = self._timed(version, lambda: self._build(version, previous))
        self._last = served
        self._spare, self._spare_behind = (previous, on_previous) if on_previous is not None else (None, [])
        return served

    def load_detached(self, version: int) -> HybridServed:
        """Load ``version`` from its snapshot, sharing no tables with any other load."""
        return self._timed(version, lambda: self._build(version, None))[0]

    def _timed(
        self, version: int, build: Callable[[], tuple[HybridServed, list[dict[str, Any]] | None]]
    ) -> tuple[HybridServed, list[dict[str, Any]] | None]:
        started = time.perf_counter()
        try:
            served, on_previous = (self._untrained(), None) if version == 0 else build()
        except CheckpointError as error:
            raise ModelLoadError(str(error)) from error
        except (HybridModelError, RuntimeError, ValueError, KeyError, OSError) as error:
            raise ModelLoadError(f"hybrid version {version} could not be built: {error}") from error
        scores = served.score_rows(list(_WARMUP))
        if not all(0.0 <= score <= 1.0 for score in scores):
            raise ModelLoadError(f"version {version} produced invalid scores on warm-up")
        logger.info(
            "loaded hybrid version %d (%s) in %.3f s",
            version,
            "+".join(map(str, self.last_chain)) or "untrained",
            time.perf_counter() - started,
        )
        return served, on_previous

    def _untrained(self) -> HybridServed:
        self.last_chain = []
        config = HybridConfig(text_dim=self._texts.dim, user_rows=1, item_rows=1, word_rows=1)
        manifest = {"version": 0, "model_kind": HYBRID, "base_model": self._texts.version, "tuning": None}
        return HybridServed(0, manifest, HybridModel(config, self._texts.embedder), self._texts)

    def _build(self, version: int, previous: HybridServed | None) -> tuple[HybridServed, list[dict[str, Any]] | None]:
        """The version, and the deltas applied on ``previous``'s state (None: built from a snapshot)."""
        chain, base = self._chain(version, previous.version if previous is not None else None)  # newest first
        payloads: list[dict[str, Any]] = []
        if base is not None and previous is not None:
            model, applied = self._reused_tables() or clone_model(previous.model), []
            texts = previous.texts or self._texts
        else:
            snapshot = self._store.checkout(chain.pop().version, skip=TRAINER_ONLY_FILES)
            model, texts = self._from_snapshot(snapshot.directory)
            if previous is None:
                # A snapshot ships the trainer's whole text cache (tens of MB). A server that
                # already follows the lineage holds those embeddings: each came with an earlier
                # version or was embedded here on first use.
                self._texts.warm(snapshot.directory / CACHE_FILE)
            applied = [snapshot.manifest.version]
        _bind(model, texts)
        for manifest in reversed(chain):
            delta = self._store.checkout(manifest.version, skip=TRAINER_ONLY_FILES)
            payloads.append(read_payload(delta.directory))
            texts = self._apply(model, payloads[-1], texts)
            self._texts.warm(delta.directory / CACHE_FILE)
            applied.append(manifest.version)
        self.last_chain = applied
        top = self._store.read_manifest(version)
        return HybridServed(version, asdict(top), model, texts), payloads if base is not None else None

    def _apply(self, model: HybridModel, payload: dict[str, Any], texts: ServerTexts) -> ServerTexts:
        """Apply one delta; a delta with new adapters rebinds the model to their text view."""
        if payload.get("encoder") is not None:
            texts = self._texts.bound_to(payload["encoder"])
            _bind(model, texts)
        apply_delta(model, payload)
        return texts

    def _reused_tables(self) -> HybridModel | None:
        """The spare version's tables brought up to the served version, if no batch still reads
        them; the spare is given up either way (a failed load must not leave it half-updated)."""
        spare, behind = self._spare, self._spare_behind
        self._spare, self._spare_behind = None, []
        if spare is None or not spare.readers.retire():
            return None
        texts = spare.texts or self._texts
        for payload in behind:
            texts = self._apply(spare.model, payload, texts)
        self.reused_tables += 1
        return spare.model

    def _chain(self, version: int, last: int | None) -> tuple[list[Manifest], int | None]:
        """Manifests from ``version`` back to a full snapshot, or back to (excluding) ``last`` if
        it lies on the chain; ``last`` is then returned second (else None)."""
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

    def _from_snapshot(self, directory: Path) -> tuple[HybridModel, ServerTexts]:
        snapshot = read_payload(directory)
        texts = self._texts.bound_to(snapshot.get("encoder"))
        use_text = bool(snapshot["config"].get("use_text", True))
        return load_snapshot(snapshot, texts.embedder if use_text else None), texts


def _bind(model: HybridModel, texts: ServerTexts) -> None:
    """Score ``model``'s texts through ``texts`` (a model without text has no embedder)."""
    if model.embedder is not None:
        model.embedder = texts.embedder


def clone_model(model: HybridModel) -> HybridModel:
    """An independent copy of ``model``'s tables, mappings and dense part for serving and
    applying deltas (shares the encoder and the fixed text buckets, which no version changes)."""
    return copy_model(model, keep_embedder=True)
