"""Publish real model versions into a store without a trainer process."""

from __future__ import annotations

import torch

from streamtune.checkpoints import CheckpointStore, Manifest
from streamtune.modeling.base import TuningSpec, load_base_model, wrap_for_tuning
from streamtune.modeling.weights import save_state, trainable_state


def perturbed_model(base_model: str, spec: TuningSpec, seed: int = 0, scale: float = 0.5) -> torch.nn.Module:
    """The base model wrapped for ``spec``, its trainable weights plus seeded noise."""
    torch.manual_seed(seed)  # LoRA's initial weights: the same model for the same seed
    model = wrap_for_tuning(load_base_model(base_model, spec.pooling), spec)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model


def publish_perturbed_version(
    store: CheckpointStore,
    base_model: str,
    *,
    tuning: str | TuningSpec = "lora",
    seed: int = 0,
    manifest_tuning: dict[str, object] | None = None,
) -> Manifest:
    """A version whose trainable weights are the base's plus seeded noise (so scores differ);
    ``tuning`` names the tuning (its spec's defaults) or gives the whole spec;
    ``manifest_tuning`` replaces what the manifest records of the spec (an older format's)."""
    spec = tuning if isinstance(tuning, TuningSpec) else TuningSpec(tuning=tuning)
    state = trainable_state(perturbed_model(base_model, spec, seed), spec.tuning)
    latest = store.latest_version()
    return store.publish(
        lambda directory: save_state(state, spec.tuning, directory),
        lambda version, files: Manifest(
            version=version,
            parent_version=latest,
            base_model=base_model,
            tuning=spec.to_dict() if manifest_tuning is None else manifest_tuning,
            created_at="2026-01-01T00:00:00+00:00",
            files=files,
            kafka_offsets={},
            examples_seen=0,
            examples_in_version=0,
            last_train_loss=None,
            max_length=32,
            data_watermark_ms=1_700_000_000_000,
        ),
    )
