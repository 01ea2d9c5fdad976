"""The hybrid family behind the model-family seam (:mod:`streamtune.modeling.family`).

ID rows and a small dense scorer learned per micro-batch
(:class:`~streamtune.modeling.hybrid.learner.HybridLearner`), text through cached sentence
embeddings of the pretrained encoder (nothing is tokenized on the ingest thread: a repeated
text costs a cache lookup on the training thread, a new one a forward pass shared by the
batch's misses). Versions are full snapshots or deltas of the rows and dense tensors changed
since the parent (:mod:`streamtune.modeling.hybrid.version_files`): a delta whenever the
parent is the state this process exported last, a snapshot every ``snapshot_every`` versions,
after a restart, or when a delta would hold most rows anyway. Trainer-only state (Adagrad
accumulators, AdamW moments, admission counters) goes into the version's stream state.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamtune.checkpoints import Manifest
from streamtune.errors import ConfigurationError
from streamtune.ingest.training_batch import TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.family import StepResult
from streamtune.modeling.hybrid import trainer_state
from streamtune.modeling.hybrid.holdout import RawHoldoutWindow, batch_events
from streamtune.modeling.hybrid.learner import HybridLearner
from streamtune.modeling.hybrid.model import HybridModel
from streamtune.modeling.hybrid.model_state import copy_model, scrub_keys
from streamtune.modeling.hybrid.text_embeddings import TextEmbedder
from streamtune.modeling.hybrid.version_files import (
    CACHE_FILE,
    Checkout,
    ManifestReader,
    RecordingCache,
    VersionInfo,
    load_chain,
    read_info,
    read_version_number,
    write_version,
)
from streamtune.modeling.hybrid.versions import export_delta, export_snapshot
from streamtune.privacy import user_tags

logger = logging.getLogger(__name__)

KIND = "hybrid"


@dataclass(eq=False)
class HybridSnapshot:
    """A copy of the model (without the embedder) as it was at one moment; ``state_id`` names it."""

    model: HybridModel
    # Rows changed since the state the family exported last, per key space (a delta's rows).
    changed: dict[str, set[int]] = field(default_factory=dict)
    state_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class HybridOptions:
    """What the manifest says about the text side, and the snapshot cadence."""

    encoder_name: str = "none"  # the sentence encoder's directory ("none" without text)
    max_length: int = 64  # tokens kept per text by the encoder
    snapshot_every: int = 100  # a full snapshot at least every this many versions


@dataclass(frozen=True)
class VersionAccess:
    """How the family reads older versions of its store (to load a delta's chain) and rewrites
    retained ones (to forget users); None parts where the store offers no such access."""

    read_manifest: ManifestReader
    checkout: Checkout
    scrub_store: Callable[[np.ndarray], int] | None = None


class HybridFamily:
    """:class:`~streamtune.modeling.family.ModelFamily` for ID + cached-text events."""

    kind = KIND
    writes_deltas = True
    gate_allows_noise = True  # versions 8 events apart rank a 256-example window differently

    def __init__(
        self,
        learner: HybridLearner,
        metrics: TrainerMetrics,
        options: HybridOptions | None = None,
        access: VersionAccess | None = None,
    ) -> None:
        self.learner = learner
        self.embedder = learner.model.embedder
        self.options = options or HybridOptions()
        self.snapshot_every = self.options.snapshot_every
        self.access = access
        self._metrics = metrics
        self._scoring: HybridModel | None = None  # set by scoring_as()
        self._exported: tuple[HybridSnapshot, int] | None = None  # last export and its chain length
        self._snapshots: weakref.WeakSet[HybridSnapshot] = weakref.WeakSet()  # scrubbed by forget()
        # Rows changed since the last export, gathered from the tables' own records at each
        # snapshot (a rejected candidate's rows stay in: the next delta still carries them).
        self._changed: dict[str, set[int]] = {}

    @property
    def model(self) -> HybridModel:
        return self.learner.model

    # --- ingest, train, score --------------------------------------------------------------
    def batch_encoder(self) -> None:
        return None  # the batch's raw fields are the inputs; texts are embedded through the cache

    def train(self, batch: TrainingBatch) -> StepResult:
        """One step; the step's own forward pass gives the scores before the update."""
        if not len(batch):
            return StepResult(0.0, np.zeros(0))
        loss = self.learner.learn(batch_events(batch))
        self._metrics.train_batch_size.observe(len(batch))
        return StepResult(loss / len(batch), self.learner.last_probabilities)

    def score(self, batch: TrainingBatch) -> np.ndarray:
        model = self._scoring if self._scoring is not None else self.model
        return model.predict(batch_events(batch)).probabilities

    def warm_texts(self, texts: list[str]) -> None:
        """Embed ``texts`` into the cache now (as a trainer that loaded its cache from the store has them)."""
        if self.embedder is not None:
            self.embedder.embed(texts)

    def on_drift(self) -> None:
        """Nothing to re-warm: Adagrad rows and AdamW keep adapting at their own pace."""

    def holdout_window(self, capacity: int) -> RawHoldoutWindow:
        return RawHoldoutWindow(capacity)

    # --- versions --------------------------------------------------------------------------
    def export(self, directory: Path, snapshot: HybridSnapshot, *, parent: Path | None = None) -> dict[str, Any]:
        """Write ``snapshot`` as a delta against ``parent`` when the parent is the state this
        family exported last (and the chain is short enough), else as a full snapshot."""
        delta_of, chain = self._delta_base(parent)
        payload = self._delta(snapshot) if delta_of is not None else None
        if payload is None:
            delta_of, chain = None, 0
            with self._exporting(snapshot.model) as model:
                payload = export_snapshot(model)
        cache = self.embedder.cache if self.embedder is not None else None
        if isinstance(cache, RecordingCache):
            new = cache.take_new()
            cache.save(directory / CACHE_FILE, None if delta_of is None else new)
        write_version(directory, payload, VersionInfo(snapshot.state_id, payload["type"], chain))
        self._exported = (snapshot, chain)
        self._changed = {}  # nothing is trained between a snapshot and its export
        return {
            "base_model": self.options.encoder_name,
            "tuning": {"tuning": KIND, **snapshot.model.config.to_dict()},
            "max_length": self.options.max_length,
            "model_kind": KIND,
            "delta_of": delta_of,
            "chain_length": chain,
        }

    def _delta_base(self, parent: Path | None) -> tuple[int | None, int]:
        """The parent's version number and the new chain length, when a delta is possible."""
        if parent is None or self._exported is None:
            return None, 0
        info, (exported, chain) = read_info(parent), self._exported
        if info is None or info.state_id != exported.state_id or chain + 1 >= self.snapshot_every:
            return None, 0
        return read_version_number(parent), chain + 1

    def _delta(self, snapshot: HybridSnapshot) -> dict[str, Any] | None:
        """The delta of ``snapshot`` against the last export; None when most rows changed."""
        changed = snapshot.changed
        mapped = sum(len(mapping) for mapping in snapshot.model.mappings.values())
        if sum(len(rows) for rows in changed.values()) > max(64, mapped // 2):
            return None
        with self._exporting(snapshot.model) as model:
            for space, table in model.tables.items():  # the snapshot's own record; nothing else reads it
                table.take_dirty()
                table.mark_dirty(torch.tensor(sorted(changed.get(space, ())), dtype=torch.long))
            return export_delta(model)

    @contextlib.contextmanager
    def _exporting(self, model: HybridModel) -> Iterator[HybridModel]:
        """``model`` (a snapshot's copy) with the embedder attached while exported, so the
        version names its encoder; no copy of the tables is made."""
        model.embedder = self.embedder
        try:
            yield model
        finally:
            model.embedder = None

    def load(self, directory: Path, manifest: Manifest) -> None:
        """The version's tables and dense weights (its chain applied in order), a fresh
        learner around them; :meth:`load_trainer_state` then puts the optimizer state back."""
        if manifest.model_kind != KIND:
            raise ConfigurationError(
                f"the store at {directory.parent} holds {manifest.model_kind} versions but "
                f"STREAMTUNE_MODEL_KIND={KIND}: use another STREAMTUNE_CHECKPOINT_DIR"
            )
        if manifest.is_delta and self.access is None:
            raise ConfigurationError("a delta version needs its chain, and this family has no store to read it from")
        reader = self.access.read_manifest if self.access else _no_reads
        checkout = self.access.checkout if self.access else _no_reads
        model = load_chain(manifest, directory, reader, checkout, self.embedder)
        if self.embedder is not None and isinstance(self.embedder.cache, RecordingCache):
            self.embedder.cache.take_new()  # what was loaded is in the store already
        self.learner = HybridLearner(model, self.learner.tuner)  # the adapters came with the chain
        info = read_info(directory)
        state_id = info.state_id if info is not None else uuid.uuid4().hex
        self._exported = (HybridSnapshot(_attached(model, None), state_id=state_id), manifest.chain_length)
        self._changed = {}

    def trainer_state(self) -> dict[str, np.ndarray]:
        return trainer_state.encode(self.learner.trainer_state(live_mappings=True))

    def load_trainer_state(self, state: dict[str, np.ndarray]) -> None:
        decoded = trainer_state.decode(state)
        if decoded is not None:
            optimizers = self.learner.sparse_optimizers
            decoded["accumulators"] = {
                space: trainer_state.held_rows(sparse, optimizers[space].accumulators.shape[1])
                for space, sparse in decoded["accumulators"].items()
            }
            self.learner.load_trainer_state(decoded)

    def forget(self, user_tags_: np.ndarray) -> int:
        """Drop these users' rows from the live tables, from every snapshot still held (the
        gate's), and — through the store access — from every retained version."""
        wanted = {int(tag) for tag in np.asarray(user_tags_).tolist() if tag}
        keys = _user_keys(self.model, wanted)
        dropped = 0
        for key in keys:
            if self.learner.forget_user(key):  # the cleared row is in the next delta
                dropped += 1
        for snapshot in list(self._snapshots):
            scrub_keys(snapshot.model, keys)
        if self.access is not None and self.access.scrub_store is not None and wanted:
            self.access.scrub_store(np.array(sorted(wanted), dtype=np.int64))
        return dropped

    # --- the gate's needs ------------------------------------------------------------------
    def snapshot(self) -> HybridSnapshot:
        self._collect_changes()
        taken = HybridSnapshot(_attached(self.model, None), {space: set(rows) for space, rows in self._changed.items()})
        self._snapshots.add(taken)
        return taken

    def restore(self, snapshot: HybridSnapshot) -> int:
        """Back to ``snapshot``'s tables; the optimizer state is carried over (same shapes)."""
        self._collect_changes()  # the rows trained since go back too: the next delta carries them
        old = self.learner
        self.learner = HybridLearner(_attached(snapshot.model, self.embedder), old.tuner)  # adapters stay
        self.learner.clock = old.clock
        for space, optimizer in self.learner.sparse_optimizers.items():
            optimizer.accumulators.copy_(old.sparse_optimizers[space].accumulators)
        self.learner.dense_optimizer.load_state_dict(old.dense_optimizer.state_dict())
        return 0  # no replay buffer: nothing rehearsed to forget

    def _collect_changes(self) -> None:
        for space, table in self.model.tables.items():
            self._changed.setdefault(space, set()).update(table.take_dirty())

    @contextlib.contextmanager
    def scoring_as(self, snapshot: HybridSnapshot, current: HybridSnapshot) -> Iterator[None]:
        del current  # the live model is never changed: scoring uses the snapshot's own copy
        snapshot.model.embedder = self.embedder
        self._scoring = snapshot.model
        try:
            yield
        finally:
            self._scoring = None
            snapshot.model.embedder = None


def _attached(model: HybridModel, embedder: TextEmbedder | None) -> HybridModel:
    """A copy of ``model``'s state (its embedder is shared, never copied) using ``embedder``."""
    copied = copy_model(model)
    copied.embedder = embedder
    return copied


def _user_keys(model: HybridModel, tags: set[int]) -> list[str]:
    """The user keys (pseudonyms), admitted or still counting sightings, with one of ``tags``."""
    mapping = model.users
    keys = [key for key, _ in mapping.items()] + list(mapping.state_dict()["pending"])
    if not keys:
        return []
    return [key for key, tag in zip(keys, user_tags(keys).tolist(), strict=True) if tag in tags]


def _no_reads(version: int) -> Any:
    raise ConfigurationError(f"version {version} is needed, and this family has no store to read it from")
