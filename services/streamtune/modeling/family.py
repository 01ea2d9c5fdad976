"""The model-family seam: what the trainer needs from a model, and how a family is chosen.

A *model family* is one kind of model the trainer can keep fresh. The trainer's service loop,
its quality gate and its publisher talk to a family only through :class:`ModelFamily`:

* :meth:`~ModelFamily.batch_encoder` — the step run on the ingest thread to prepare model inputs
  from each batch's raw rows (None: the family reads the raw fields of the batch itself);
* :meth:`~ModelFamily.train` — one step on a :class:`~streamtune.ingest.training_batch.TrainingBatch`,
  returning a :class:`StepResult` (loss, and the rows' scores *before* the step, for the
  prequential monitor); :meth:`~ModelFamily.score` — probabilities for a batch;
* :meth:`~ModelFamily.export` / :meth:`~ModelFamily.load` — a version's model files (a full
  snapshot, or a delta against ``parent`` where the family supports one) and what the manifest
  records about them; :meth:`~ModelFamily.trainer_state` / :meth:`~ModelFamily.load_trainer_state`
  — trainer-only state (optimizer moments and the like), kept in the version's trainer file;
* :meth:`~ModelFamily.snapshot`, :meth:`~ModelFamily.restore` and :meth:`~ModelFamily.scoring_as`
  — the gate's needs: the published weights, putting them back, scoring them on the holdout;
* :meth:`~ModelFamily.forget` — drop what the family keeps of some users (``streamtune forget``);
* :meth:`~ModelFamily.on_drift` — the drift alarm; :meth:`~ModelFamily.holdout_window` — the
  gate's window in the family's row form.

Known limit: the holdout window stores rows in the text family's form (compact token rows); a
family that scores raw fields needs a window that keeps those (a row store of its own behind
:meth:`~ModelFamily.holdout_window`).

Selection: ``STREAMTUNE_MODEL_KIND`` names the family; :func:`build_family` (this module) looks
the kind up in :data:`FAMILIES` and builds it, so the service loop never branches on the kind.
Families: ``text`` (:class:`streamtune.modeling.text.family.TextFamily`, LoRA or full fine-tuning
of a Hugging Face sequence classifier) and ``hybrid`` (:class:`streamtune.modeling.hybrid.family.HybridFamily`,
ID embeddings and cached sentence embeddings, versions as snapshots and deltas). A new family is a module with a
``build(settings, device, metrics)`` function and one line in :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from streamtune.checkpoints import Manifest
    from streamtune.config import Settings
    from streamtune.ingest.training_batch import BatchEncoder, TrainingBatch
    from streamtune.metrics import TrainerMetrics
    from streamtune.trainer.gate.holdout import HoldoutWindow

# Kind → "module:function" building the family; imported only when chosen, so the text
# family's dependencies (transformers, PEFT) are not a cost for another family and vice versa.
FAMILIES: dict[str, str] = {
    "text": "streamtune.modeling.text.family:build",
    "hybrid": "streamtune.modeling.hybrid.setup:build",
}


@dataclass(frozen=True)
class StepResult:
    """What one training step reports: its loss, and the scores (probabilities) the model gave
    the batch's rows before it learned them, one per row in the batch's order."""

    loss: float
    scores: np.ndarray


class ModelExport(Protocol):
    """The part of a family the publisher uses: writing a version's model files."""

    # Whether :meth:`export` writes deltas against the parent version (it is then given the
    # parent's directory).
    writes_deltas: bool

    def export(self, directory: Path, snapshot: Any, *, parent: Path | None = None) -> dict[str, Any]:
        """Write ``snapshot``'s model files of a version into ``directory`` (against ``parent``'s
        files for a delta); returns the manifest fields describing the model (``base_model``,
        ``tuning``, ``max_length``)."""
        ...


class ModelFamily(ModelExport, Protocol):
    """What the trainer needs from a model family (see the module docstring)."""

    kind: str
    # Whether the quality gate allows for its window's noise when judging this family's
    # candidates (its versions move apart a lot between publishes: per-user rows).
    gate_allows_noise: bool

    def batch_encoder(self) -> BatchEncoder | None:
        """The ingest-thread step that turns (texts, contexts) into model inputs, or None."""
        ...

    def train(self, batch: TrainingBatch) -> StepResult:
        """One optimisation step on every row of ``batch``."""
        ...

    def score(self, batch: TrainingBatch) -> np.ndarray:
        """Probabilities of the positive class for the rows of ``batch``, model as it is now."""
        ...

    def on_drift(self) -> None:
        """The prequential loss rose and stayed up (a drift alarm): adapt faster, if the family
        can (the text family re-warms its learning rate when STREAMTUNE_LR_REWARM_FACTOR > 1)."""
        ...

    def holdout_window(self, capacity: int) -> HoldoutWindow:
        """An empty holdout window for the gate, holding rows in the form :meth:`score` takes."""
        ...

    def load(self, directory: Path, manifest: Manifest) -> None:
        """Make the version in ``directory`` the model's state (raises on a mismatch)."""
        ...

    def trainer_state(self) -> dict[str, np.ndarray]:
        """Trainer-only state to persist with a version (never read by servers)."""
        ...

    def load_trainer_state(self, state: dict[str, np.ndarray]) -> None:
        """Take back what :meth:`trainer_state` returned (an empty dict: nothing was kept)."""
        ...

    def forget(self, user_tags: np.ndarray) -> int:
        """Drop what the family keeps of these users (pseudonym tags); returns rows dropped."""
        ...

    def snapshot(self) -> object:
        """An opaque copy of the weights that define a version, as they are now."""
        ...

    def restore(self, snapshot: object) -> int:
        """Go back to ``snapshot`` (the gate's rollback); optimizer state and whatever was learned
        since are dropped. Returns the rows of rehearsal data forgotten with it."""
        ...

    def scoring_as(self, snapshot: object, current: object) -> AbstractContextManager[None]:
        """Within the block the model scores as ``snapshot``; after it, as ``current`` again,
        with the optimizer state untouched."""
        ...


def build_family(settings: Settings, device: torch.device, metrics: TrainerMetrics) -> ModelFamily:
    """The family ``STREAMTUNE_MODEL_KIND`` names, built for ``device`` (``metrics``: the
    trainer's, for what the family itself measures, e.g. its replay buffer)."""
    from streamtune.errors import ConfigurationError
    from streamtune.modeling.model_process import ProcessFamily, uses_model_process

    if uses_model_process(settings):
        return ProcessFamily(settings, metrics)  # type: ignore[return-value]
    try:
        module, _, function = FAMILIES[settings.model_kind].partition(":")
    except KeyError:
        raise ConfigurationError(
            f"STREAMTUNE_MODEL_KIND={settings.model_kind!r} is not a model family; choose one of {sorted(FAMILIES)}"
        ) from None
    build: Callable[[Settings, torch.device, TrainerMetrics], ModelFamily]
    build = getattr(importlib.import_module(module), function)
    return build(settings, device, metrics)
