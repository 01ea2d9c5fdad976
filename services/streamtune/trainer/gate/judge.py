"""Score a candidate, the published and the reference weights on the holdout window, and let
the gate decide.

The published and reference weights (see :mod:`streamtune.trainer.gate.decision`) are kept as
snapshots of the model family (:meth:`~streamtune.modeling.family.ModelFamily.snapshot`) —
usually one and the same; for full fine-tuning each distinct one is a copy of the model. Scoring
them means swapping them into the live model for a moment and back
(:meth:`~streamtune.modeling.family.ModelFamily.scoring_as`);
the holdout window caches their scores per example, so a decision scores them only on examples
that arrived since the previous one, and the candidate on the whole window (a few hundred
examples: milliseconds for the tiny test model, about a second for MiniLM on two CPU cores).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from streamtune.metrics import TrainerMetrics
from streamtune.modeling.family import ModelFamily
from streamtune.trainer.gate.decision import GateDecision, QualityGate, Score
from streamtune.trainer.gate.holdout import HoldoutWindow
from streamtune.trainer.gate.noise import auc_placements
from streamtune.trainer.monitor.rolling_score import trainer_auc, trainer_log_losses

logger = logging.getLogger(__name__)

PUBLISHED = "published"
REFERENCE = "reference"


@dataclass
class Verdict:
    """A gate decision with the figures behind it (also written into the manifest)."""

    decision: GateDecision
    figures: dict[str, float] = field(default_factory=dict)
    candidate_scores: np.ndarray | None = None

    def record(self, metrics: TrainerMetrics) -> None:
        """Export the holdout log-losses behind the decision (``streamtune_holdout_loss``)."""
        for model, suffix in (("candidate", ""), ("published", "_published"), ("reference", "_reference")):
            if f"holdout_logloss{suffix}" in self.figures:
                metrics.holdout_loss.labels(model=model).set(self.figures[f"holdout_logloss{suffix}"])


class Gatekeeper:
    """Owns the holdout window, the published and reference weights, and the :class:`QualityGate`."""

    def __init__(self, gate: QualityGate, holdout: HoldoutWindow) -> None:
        self.gate = gate
        self.holdout = holdout
        self.published_state: object = None
        self._reference_state: object = None

    def set_published(self, state: object) -> None:
        """The published weights changed by other means than :meth:`accept` (start, rollback)."""
        self.published_state = self._reference_state = state
        self.holdout.forget_scores(PUBLISHED)
        self.holdout.forget_scores(REFERENCE)
        self.gate.reset()

    def judge(self, family: ModelFamily, candidate_state: object) -> Verdict:
        """Compare the model as it is now (``candidate_state``) with the published weights."""
        examples = len(self.holdout)
        if not self.gate.can_judge(examples):
            unjudged = Score(np.zeros(examples))
            return Verdict(self.gate.judge(unjudged, unjudged, unjudged))
        labels = self.holdout.labels()
        candidate = self._score(family, None)
        published = self._cached_scores(family, PUBLISHED, self.published_state, candidate_state)
        if self._reference_state is self.published_state:
            reference = published
        else:
            reference = self._cached_scores(family, REFERENCE, self._reference_state, candidate_state)
        scores = {
            name: holdout_score(labels, values)
            for name, values in (("", candidate), ("_published", published), ("_reference", reference))
        }
        figures = {"holdout_examples": float(examples)}
        for suffix, score in scores.items():
            figures[f"holdout_logloss{suffix}"] = score.loss
            if score.auc is not None:
                figures[f"holdout_auc{suffix}"] = score.auc
        decision = self.gate.judge(scores[""], scores["_published"], scores["_reference"])
        if decision.re_anchor:
            self._reference_state = self.published_state
            self._remember(REFERENCE, published)
        return Verdict(decision, figures, candidate)

    def unjudged(self) -> Verdict:
        """The verdict on the published weights themselves (nothing trained since, or what was is
        discarded): the version only moves the offsets past held-out and discarded events."""
        return Verdict(GateDecision(True, False, "nothing trained since the published weights: offsets only"))

    def accept(self, verdict: Verdict, candidate_state: object) -> None:
        """The candidate was published: its weights and holdout scores are the published ones."""
        if verdict.decision.new_reference:
            self._reference_state = candidate_state
            self._remember(REFERENCE, verdict.candidate_scores)
        self.published_state = candidate_state
        self._remember(PUBLISHED, verdict.candidate_scores)

    def _remember(self, name: str, scores: np.ndarray | None) -> None:
        if scores is None:
            self.holdout.forget_scores(name)
        else:
            self.holdout.set_scores(name, scores)

    def _cached_scores(self, family: ModelFamily, name: str, state: object, candidate_state: object) -> np.ndarray:
        """Scores of ``state`` on the window, computing only the ones not cached yet."""
        unscored = self.holdout.unscored_slots(name)
        if len(unscored):
            with family.scoring_as(state, candidate_state):
                self.holdout.set_scores(name, self._score(family, unscored), unscored)
        return self.holdout.scores(name)

    def _score(self, family: ModelFamily, slots: np.ndarray | None) -> np.ndarray:
        """Scores at ``slots`` (default: the window, oldest first), batched by length: rows of
        similar length share a batch, so little compute goes into padding."""
        slots = self.holdout.slots() if slots is None else slots
        by_length = np.argsort(self.holdout.lengths(slots), kind="stable")
        parts = [family.score(batch) for batch in self.holdout.batches(slots[by_length])]
        scores = np.empty(len(slots), dtype=np.float64)
        scores[by_length] = np.concatenate(parts) if parts else np.empty(0)
        return scores


def holdout_score(labels: np.ndarray, scores: np.ndarray) -> Score:
    """One set of weights' scores on the window as the gate judges them (with the AUC's DeLong
    components, so the AUC rule knows the window's noise)."""
    placements = auc_placements(labels, scores)
    return Score(trainer_log_losses(labels, scores), trainer_auc(labels, scores), placements, labels >= 0.5)
