"""Turn a version in the store into a ready-to-serve model: verify, build, warm up.

Only safetensors and JSON are read. A version is built as an overlay on the base model (see
:mod:`streamtune.modeling.overlay`): LoRA adapters are merged into private copies of the layers
they adapt, so serving a fine-tuned version costs exactly what serving the base model costs, and
keeping two versions in memory during a swap costs only the tensors they change. A fully
fine-tuned version replaces every tensor: it loads into a staging copy while the old version
serves, and the old copy is freed when the last batch using it is done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import torch
from transformers import PreTrainedTokenizerBase

from streamtune.checkpoints import VersionStore
from streamtune.checkpoints.manifest import TRAINER_ONLY_FILES
from streamtune.errors import CheckpointError, ModelLoadError
from streamtune.inference.backends import Backend
from streamtune.inference.backends.selection import BackendChooser
from streamtune.inference.bucketing import plan_buckets
from streamtune.modeling.base import TuningSpec, load_base_model, load_tokenizer
from streamtune.modeling.device import autocast
from streamtune.modeling.encoding import PAD_MULTIPLE
from streamtune.modeling.overlay import full_tensors, merged_lora_tensors, overlay_module
from streamtune.modeling.text.pooling import POOLINGS, apply_pooling
from streamtune.modeling.weights import load_state

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Runs a function where forward passes run (the batcher's worker), and returns its result.
Runner = Callable[[Callable[[], T]], T]

# Representative requests for the warm-up: item texts of everyday lengths, alone and batched.
# Kept short: the warm-up runs between serving batches, and its time is added to theirs.
_WARMUP_TEXTS = ("a short item text", "a longer item text, with a few more words to give it a second length")
_WARMUP_SIZES = (1, 4)
# Rows per forward pass when the caller sets no limit.
DEFAULT_MAX_ROWS = 64


@dataclass(frozen=True)
class ServedModel:
    """One immutable loaded version; a batch keeps a reference for its whole duration."""

    version: int
    manifest: dict[str, Any]
    module: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_length: int
    # Fast tokenizers hold mutable truncation state and refuse concurrent use ("Already
    # borrowed"); every version of one loader shares the tokenizer, so they share this lock.
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    # What runs the forward pass (STREAMTUNE_SERVE_BACKEND); None: the module, with torch.
    backend: Backend | None = field(default=None, compare=False, repr=False)

    @property
    def data_watermark_ms(self) -> int | None:
        return self.manifest.get("data_watermark_ms")

    def predict(
        self,
        texts: Sequence[str],
        contexts: Sequence[str | None],
        max_rows: int = DEFAULT_MAX_ROWS,
        on_forward: Callable[[int], object] | None = None,
    ) -> list[float]:
        """Probabilities of the positive class for (text, context) pairs (see :meth:`score_groups`)."""
        scores = [0.0] * len(texts)
        for rows, group_scores in self.score_groups(texts, contexts, max_rows):
            for row, score in zip(rows, group_scores, strict=True):
                scores[row] = score
            if on_forward is not None:
                on_forward(len(rows))
        return scores

    def score_groups(
        self, texts: Sequence[str], contexts: Sequence[str | None], max_rows: int = DEFAULT_MAX_ROWS
    ) -> Iterator[tuple[list[int], list[float]]]:
        """Scores one length group at a time: (row indices, their probabilities) per forward pass.

        Every pair is tokenized once, as in training (:func:`streamtune.modeling.encoding.encode_pairs`)
        but unpadded; rows are then grouped by length (:func:`plan_buckets`), and each group is
        padded only to its own longest row. Groups come shortest first, so a caller can answer
        short requests before the long ones are done.
        """
        for rows, features in self._length_groups(texts, contexts, max_rows):
            yield rows, self.forward(features)

    def _length_groups(
        self, texts: Sequence[str], contexts: Sequence[str | None], max_rows: int
    ) -> list[tuple[list[int], dict[str, torch.Tensor]]]:
        """Row indices and padded model inputs of each length group."""
        multiple = PAD_MULTIPLE if self.max_length % PAD_MULTIPLE == 0 else 1
        with self.tokenizer_lock:
            # The arguments of encode_pairs, less its padding of the whole batch to its longest row.
            encoded = self.tokenizer(
                list(texts),
                [context or "" for context in contexts],
                truncation="longest_first",
                max_length=self.max_length,
            )
            groups = []
            for rows in plan_buckets([len(ids) for ids in encoded["input_ids"]], max_rows, multiple):
                group = {name: [values[row] for row in rows] for name, values in encoded.items()}
                features = self.tokenizer.pad(group, pad_to_multiple_of=multiple, return_tensors="pt")
                groups.append((rows, dict(features)))
        return groups

    @torch.inference_mode()
    def forward(self, features: dict[str, torch.Tensor]) -> list[float]:
        """Probabilities for one padded batch of model inputs."""
        if self.backend is not None:
            return self.backend.probabilities(features)
        inputs = {name: tensor.to(self.device, non_blocking=True) for name, tensor in features.items()}
        with autocast(self.device):
            logits = self.module(**inputs).logits.squeeze(-1)
        return torch.sigmoid(logits.float()).cpu().tolist()


@dataclass(frozen=True)
class ForwardPlacement:
    """Where a loaded version's forward passes run.

    ``warm_up_runner`` runs the warm-up batches where serving batches run (the batcher's worker
    thread), so a warm-up never competes with requests for the cores; None: in the loading
    thread. ``backends`` chooses what runs each version's forward passes (None: the module
    itself, with torch); the warm-up runs on the chosen one.
    """

    warm_up_runner: Runner | None = None
    backends: BackendChooser | None = None


class ModelLoader:
    """Builds :class:`ServedModel` objects for versions of one store and base model, their
    forward passes placed by ``placement`` (default: torch, warm-up in the loading thread)."""

    def __init__(
        self,
        store: VersionStore,
        base_model: str,
        device: torch.device,
        max_length: int,
        placement: ForwardPlacement | None = None,
    ) -> None:
        placement = placement or ForwardPlacement()
        self._store = store
        self._base_model = base_model
        self._device = device
        self._max_length = max_length
        self._warm_up_runner = placement.warm_up_runner
        self._backends = placement.backends
        self._tokenizer = load_tokenizer(base_model)
        self._tokenizer_lock = threading.Lock()
        # Loaded once and never written: version 0 serves it as is, every other version is an
        # overlay sharing the tensors it does not change.
        self._template = load_base_model(base_model).to(device).eval()
        self._template.requires_grad_(False)

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
        return self._served(0, manifest, self._template, self._max_length)

    def _version(self, version: int) -> ServedModel:
        # Verified; downloaded and cached if remote; the trainer's own files are left alone.
        checked_out = self._store.checkout(version, skip=TRAINER_ONLY_FILES)
        manifest = checked_out.manifest
        spec = TuningSpec.from_dict(manifest.tuning)
        state = load_state(checked_out.directory, spec.tuning)
        if spec.tuning == "lora":
            tensors = merged_lora_tensors(self._template, state, spec.lora_alpha, spec.lora_r)
        elif spec.tuning == "full":
            tensors = full_tensors(self._template, state)
        else:
            raise ModelLoadError(f"version {version} has unknown tuning mode {spec.tuning!r}")
        if spec.pooling not in POOLINGS:
            raise ModelLoadError(f"version {version} has unknown pooling {spec.pooling!r}")
        # The template is the stock classifier; the version's copy pools as it was trained to.
        module = apply_pooling(overlay_module(self._template, tensors), spec.pooling).eval()
        return self._served(version, asdict(manifest), module, manifest.max_length)

    def _served(self, version: int, manifest: dict[str, Any], module: torch.nn.Module, max_length: int) -> ServedModel:
        served = ServedModel(version, manifest, module, self._tokenizer, self._device, max_length, self._tokenizer_lock)
        if self._backends is None:
            return served

        def encode(texts: Sequence[str], contexts: Sequence[str | None]) -> list[dict[str, torch.Tensor]]:
            return [features for _, features in served._length_groups(texts, contexts, DEFAULT_MAX_ROWS)]

        # Built here, in the loading thread: an export never delays a serving batch.
        return replace(served, backend=self._backends.choose(version, module, encode))

    def _warm_up(self, served: ServedModel) -> None:
        """Run representative batches before going live: the first requests pay no one-off
        costs (allocator growth, kernel selection), and a version that produces invalid scores
        is refused."""
        for size in _WARMUP_SIZES:
            texts = list(_WARMUP_TEXTS * size)[:size]

            def batch(texts: list[str] = texts) -> list[float]:
                return served.predict(texts, [None] * len(texts))

            scores = self._warm_up_runner(batch) if self._warm_up_runner else batch()
            if not all(0.0 <= score <= 1.0 for score in scores):
                raise ModelLoadError(f"version {served.version} produced invalid scores on warm-up")
