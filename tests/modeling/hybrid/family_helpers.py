"""Shared pieces of the hybrid family tests: a family on the tiny BERT, batches, publishing
through a real directory store the way the trainer's publisher does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import torch

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.config import Settings
from streamtune.events import decode_event
from streamtune.ingest.training_batch import BatchBuilder, TrainingBatch
from streamtune.metrics import TrainerMetrics
from streamtune.modeling.family import build_family
from streamtune.modeling.hybrid.family import HybridFamily
from streamtune.privacy import Pseudonymiser

KEY = b"k" * 32  # pseudonymisation key of these tests


def hybrid_settings(tiny_model_dir: str, store: Path, **overrides: object) -> Settings:
    options = {
        "model_kind": "hybrid",
        "base_model": tiny_model_dir,
        "checkpoint_dir": store,
        "keep_versions": 100,
        "snapshot_every": 4,
        "device": "cpu",
        "model_process": "off",  # the family itself, in this process, is under test
    }
    return Settings(_env_file=None, **(options | overrides))


def hybrid_family(settings: Settings) -> HybridFamily:
    torch.manual_seed(0)
    family = build_family(settings, torch.device("cpu"), TrainerMetrics())
    assert isinstance(family, HybridFamily)
    return family


def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(KEY)


def batch_of(events: list[dict]) -> TrainingBatch:
    decoded = [decode_event(json.dumps(event).encode(), 4096) for event in events]
    return BatchBuilder(None, pseudonymiser().pseudonym).build(decoded)


def publish(store: CheckpointStore, family: HybridFamily, parent: int | None) -> Manifest:
    """Export the family's current state as the next version, as the trainer's publisher does."""
    snapshot = family.snapshot()
    fields: dict = {}

    def write(directory: Path) -> None:
        fields.update(family.export(directory, snapshot, parent=store.path_of(parent) if parent else None))

    def manifest(version: int, files) -> Manifest:
        return Manifest(
            version=version,
            parent_version=parent,
            created_at=datetime.now(UTC).isoformat(),
            files=files,
            kafka_offsets={},
            examples_seen=0,
            examples_in_version=0,
            last_train_loss=None,
            **fields,
        )

    return store.publish(write, manifest)
