"""Turn a version in the store into a ready-to-serve model: verify, build, warm up.

Only safetensors and JSON are read. LoRA versions are merged into the base weights after
loading, so serving a fine-tuned version costs exactly what serving the base model costs.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from streamtune.checkpoints import CheckpointStore
from streamtune.errors import CheckpointError, ModelLoadError
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer, wrap_for_tuning
from streamtune.modeling.device import autocast
from streamtune.modeling.encoding import encode_pairs
from streamtune.modeling.weights import apply_state, load_state

logger = logging.getLogger(__name__)

_WARMUP_TEXTS = ("warm-up", "a somewhat longer warm-up text to exercise a second sequence length " * 3)


@dataclass(frozen=True)
class ServedModel:
    """One immutable loaded version; requests keep a reference for their whole duration."""

    version: int
    manifest: dict[str, Any]
    module: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_length: int

    @property
    def data_watermark_ms(self) -> int | None:
        return self.manifest.get("data_watermark_ms")

    @torch.inference_mode()
    def predict(self, texts: list[str], contexts: list[str | None]) -> list[float]:
        inputs = encode_pairs(self.tokenizer, texts, contexts, self.max_length)
        inputs = {name: tensor.to(self.device, non_blocking=True) for name, tensor in inputs.items()}
        with autocast(self.device):
            logits = self.module(**inputs).logits.squeeze(-1)
        return torch.sigmoid(logits.float()).cpu().tolist()


class ModelLoader:
    """Builds :class:`ServedModel` objects for versions of one store and base model."""

    def __init__(self, store: CheckpointStore, base_model: str, device: torch.device, max_length: int) -> None:
        self._store = store
        self._base_model = base_model
        self._device = device
        self._max_length = max_length
        self._tokenizer = load_tokenizer(base_model)
        # Loaded once; every version starts from a copy, so no version sees another's weights.
        self._template = load_base_model(base_model).eval()

    def load(self, version: int) -> ServedModel:
        """Load ``version`` (0: the base model itself); raises :class:`ModelLoadError`."""
        started = time.perf_counter()
        try:
            served = self._base() if version == 0 else self._version(version)
        except CheckpointError as error:
            raise ModelLoadError(str(error)) from error
        except (RuntimeError, ValueError, KeyError, OSError) as error:
            raise ModelLoadError(f"version {version} could not be built: {error}") from error
        self._warm_up(served)
        logger.info("loaded version %d in %.3f s", version, time.perf_counter() - started)
        return served

    def _base(self) -> ServedModel:
        manifest = {"version": 0, "base_model": self._base_model, "tuning": None}
        return self._served(0, manifest, copy.deepcopy(self._template), self._max_length)

    def _version(self, version: int) -> ServedModel:
        manifest = self._store.verify(version)
        spec = TuningSpec.from_dict(manifest.tuning)
        state = load_state(self._store.path_of(version), spec.tuning)
        module = wrap_for_tuning(copy.deepcopy(self._template), spec)
        apply_state(module, state, spec.tuning)
        if spec.tuning == "lora":
            module = module.merge_and_unload()
        return self._served(version, asdict(manifest), module.eval(), manifest.max_length)

    def _served(self, version: int, manifest: dict[str, Any], module: torch.nn.Module, max_length: int) -> ServedModel:
        module = module.to(self._device).eval()
        module.requires_grad_(False)
        return ServedModel(version, manifest, module, self._tokenizer, self._device, max_length)

    def _warm_up(self, served: ServedModel) -> None:
        """Run representative batches before going live, so the first request pays no
        one-off costs (allocator growth, kernel selection)."""
        for size in (1, 8):
            scores = served.predict(list(_WARMUP_TEXTS * size)[:size], [None] * size)
            if not all(0.0 <= score <= 1.0 for score in scores):
                raise ModelLoadError(f"version {served.version} produced invalid scores on warm-up")
