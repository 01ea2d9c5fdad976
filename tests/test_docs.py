"""The README documents every setting and every metric the code defines."""

from __future__ import annotations

from pathlib import Path

from streamtune.config import Settings
from streamtune.metrics import ServingMetrics, TrainerMetrics

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    missing = [
        f"STREAMTUNE_{name.upper()}" for name in Settings.model_fields if f"`STREAMTUNE_{name.upper()}`" not in README
    ]
    assert not missing, f"README lacks settings: {missing}"


def test_every_metric_is_documented():
    names = set()
    for metrics in (TrainerMetrics(), ServingMetrics()):
        for family in metrics.registry.collect():
            if family.name.startswith("streamtune_"):
                names.add(family.name + ("_total" if family.type == "counter" else ""))
    missing = sorted(name for name in names if name not in README)
    assert not missing, f"README lacks metrics: {missing}"
