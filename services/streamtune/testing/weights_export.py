"""Publishing without a model family: a draft's snapshot is a plain dict of tensors, exported as
the text family exports its weights (for publisher tests and the publish benchmark)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamtune.modeling.base import TuningSpec
from streamtune.modeling.weights import save_state


@dataclass(frozen=True)
class WeightsExport:
    """The export half of :class:`~streamtune.modeling.family.ModelFamily` for raw weights."""

    base_model: str
    spec: TuningSpec
    max_length: int
    writes_deltas: bool = False

    def export(
        self, directory: Path, snapshot: dict[str, torch.Tensor], *, parent: Path | None = None
    ) -> dict[str, Any]:
        del parent
        save_state(snapshot, self.spec.tuning, directory)
        return {"base_model": self.base_model, "tuning": self.spec.to_dict(), "max_length": self.max_length}
