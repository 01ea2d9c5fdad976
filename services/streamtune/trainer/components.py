"""The trainer's guards around the model family, built from the settings: deduplication, the
holdout and the quality gate, and the drift test."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streamtune.config import Settings
from streamtune.modeling.family import ModelFamily
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.decision import NOISE_Z, QualityGate
from streamtune.trainer.gate.judge import Gatekeeper
from streamtune.trainer.monitor.page_hinkley import PageHinkley

logger = logging.getLogger(__name__)


@dataclass
class Guards:
    recent: RecentIds
    gatekeeper: Gatekeeper
    drift: PageHinkley


def quality_gate(settings: Settings, family: ModelFamily) -> QualityGate:
    gate = QualityGate(
        settings.gate_tolerance,
        settings.gate_auc_tolerance,
        settings.gate_trim,
        settings.gate_min_examples,
        settings.gate_patience,
    )
    gate.noise_z = NOISE_Z if family.gate_allows_noise else 0.0
    return gate


def build_guards(settings: Settings, family: ModelFamily) -> Guards:
    """Deduplication, holdout and gate (the window in the family's row form), drift test."""
    logger.info(
        "holdout share %.3f, window %d; dedupe window %d ids",
        settings.holdout_share,
        settings.holdout_window,
        settings.dedupe_window,
    )
    return Guards(
        recent=RecentIds(settings.dedupe_window),
        gatekeeper=Gatekeeper(quality_gate(settings, family), family.holdout_window(settings.holdout_window)),
        drift=PageHinkley(settings.drift_threshold, settings.drift_delta, settings.drift_min_examples),
    )
