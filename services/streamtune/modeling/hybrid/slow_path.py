"""The hybrid's slow path: the sentence encoder itself learns, one micro-batch in ``every``.

The fast path (:class:`~streamtune.modeling.hybrid.learner.HybridLearner`) trains rows and the
dense scorer on cached, fixed text vectors. On one batch in ``every``, before the fast step,
:class:`EncoderTuner` embeds the batch's item texts again with gradients, scores the batch
through the same dense scorer (the counts do not hold the batch's labels yet, so the loss is the
prequential one) and takes one AdamW step on the encoder's low-rank adapters only
(:mod:`streamtune.modeling.hybrid.encoder_lora`). The encoder's version then names the new
adapters: every cached item vector of the old version misses from then on and is recomputed on
demand, in the trainer and, once a version ships the adapters, in every server. History titles
stay on the pretrained encoder (:mod:`streamtune.modeling.hybrid.context`), so only item texts
are re-embedded.

The adapters' AdamW state and the batch counter are trainer-only state, persisted with every
version (:meth:`EncoderTuner.state_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamtune.modeling.hybrid.encoder_lora import LoraShape, adapter_parameters
from streamtune.modeling.hybrid.model import Event, HybridModel
from streamtune.modeling.hybrid.text_embeddings import SentenceEncoder

# The adapters' step: half the rate the text family's adapters first had (5e-4), since every
# step changes every item's vector and the dense scorer must keep up with them between steps.
DEFAULT_LR = 2.5e-4


class EncoderTuner:
    """LoRA steps on the encoder of a hybrid model's embedder, on a slower cadence.

    Parameters
    ----------
    encoder
        The trainer's sentence encoder (adapters are attached here; on CUDA when it runs there).
    every
        One step per this many micro-batches (>= 1).
    lr
        AdamW step of the adapters.
    shape
        Rank, scale and targets of the adapters.
    """

    def __init__(
        self, encoder: SentenceEncoder, every: int, lr: float = DEFAULT_LR, shape: LoraShape | None = None
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, not {every}")
        encoder.attach_adapters(shape or LoraShape())
        self.encoder = encoder
        self.every = every
        self.optimizer = torch.optim.AdamW(adapter_parameters(encoder.model), lr=lr, weight_decay=0.0)
        self.batches = 0  # micro-batches seen
        self.steps = 0  # adapter steps taken

    def observe(self, model: HybridModel, events: Sequence[Event]) -> float | None:
        """Count a micro-batch; on every ``every``-th, one adapter step on it (returns its mean
        log-loss, else None). Call before the fast step learns ``events``."""
        self.batches += 1
        if self.batches % self.every or model.embedder is None or not events:
            return None
        return self.step(model, events)

    def step(self, model: HybridModel, events: Sequence[Event]) -> float:
        """One adapter step on ``events``; the encoder's version changes with it."""
        texts = model.texts(events)  # cached history vectors; the item vectors are redone below
        keys = model.keys(events, texts)
        rows = model.lookup(keys)  # no admission: the fast step does that
        labels = [float(e["label"]) for e in events]
        texts["item"] = self.encoder.embed_for_training([str(e.get("text") or "") for e in events])
        logits = model.scorer(model.inputs(keys, rows, texts, labels))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        model.scorer.zero_grad(set_to_none=True)  # the dense part learns in the fast step only
        self.steps += 1
        self.encoder.adapters_changed()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        """Trainer-only: the adapters' AdamW moments and the counters."""
        return {"batches": self.batches, "steps": self.steps, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the adapters themselves come with the version)."""
        self.batches = int(state["batches"])
        self.steps = int(state["steps"])
        self.optimizer.load_state_dict(state["optimizer"])
