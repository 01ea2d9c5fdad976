"""The servable hybrid model: ID mappings, row tables, the dense scorer and a text embedder.

This is what a version holds and what the inference server scores with; the trainer wraps it
in :class:`~streamtune.modeling.hybrid.learner.HybridLearner`, which adds optimizers and
admission. Events are mappings with ``user_id`` (already pseudonymised), ``item_id``, ``text``
and ``context``; absent or unknown ids score through the rate prior and the text terms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.context import context_vectors
from streamtune.modeling.hybrid.errors import HybridModelError
from streamtune.modeling.hybrid.id_mapping import UNKNOWN, IdMapping
from streamtune.modeling.hybrid.scorer import DenseInputs, HybridScorer
from streamtune.modeling.hybrid.table import EmbeddingRows
from streamtune.modeling.hybrid.text_embeddings import TextEmbedder

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Prediction:
    """Scores of a batch: P(like) per event and whether its user and item had rows."""

    probabilities: np.ndarray
    user_known: np.ndarray  # bool per event
    item_known: np.ndarray


class HybridModel:
    """Tables and dense part of the hybrid family; scores batches, holds no optimizer state.

    Parameters
    ----------
    config
        Shapes and learning rates.
    embedder
        Text embeddings (with their cache); required when ``config.use_text``.
    """

    def __init__(self, config: HybridConfig, embedder: TextEmbedder | None = None) -> None:
        if config.use_text and embedder is None:
            raise HybridModelError("a hybrid model with text needs a TextEmbedder")
        if embedder is not None and embedder.dim != config.text_dim:
            raise HybridModelError(f"embedder width {embedder.dim} != config.text_dim {config.text_dim}")
        self.config = config
        self.embedder = embedder if config.use_text else None
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.users = IdMapping(config.user_rows, config.admit_after, config.expire_after)
        self.items = IdMapping(config.item_rows, config.admit_after, config.expire_after)
        self.user_table = EmbeddingRows(config.user_rows, config.factors, config.init_std, generator)
        self.item_table = EmbeddingRows(config.item_rows, config.factors, config.init_std, generator)
        self.scorer = HybridScorer(config)
        self.global_counts = [0.0, 0.0]  # events, likes: the prior every rate is pulled towards

    def lookup(self, events: Sequence[Event]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the events' users and items (UNKNOWN when absent); changes nothing."""
        users = [self.users.row(str(e["user_id"])) if e.get("user_id") is not None else UNKNOWN for e in events]
        items = [self.items.row(str(e["item_id"])) if e.get("item_id") is not None else UNKNOWN for e in events]
        return torch.tensor(users, dtype=torch.long), torch.tensor(items, dtype=torch.long)

    def inputs(
        self, events: Sequence[Event], user_rows: torch.Tensor, item_rows: torch.Tensor, running: bool = False
    ) -> DenseInputs:
        """The scorer's inputs; the row values are fresh leaves that collect gradients.

        With ``running``, the events carry labels and are in stream order: each event's
        like-counts then include the earlier events of the same batch with the same key, so
        event *t* sees exactly the labels of events before *t*, as a per-event counter would.
        """
        user_counts = self._counts(self.user_table, user_rows, events, "user_id", running)
        item_counts = self._counts(self.item_table, item_rows, events, "item_id", running)
        inputs = DenseInputs(
            user=self.user_table.gather(user_rows),
            item=self.item_table.gather(item_rows),
            rates=self._rates(user_counts, item_counts),
        )
        if self.embedder is not None:
            texts = [str(e.get("text") or "") for e in events]
            liked, disliked = context_vectors([str(e.get("context") or "") for e in events], self.embedder)
            inputs.text_item = torch.from_numpy(self.embedder.embed(texts))
            inputs.text_liked = torch.from_numpy(liked)
            inputs.text_disliked = torch.from_numpy(disliked)
        return inputs

    @torch.no_grad()
    def predict(self, events: Sequence[Event], running: bool = False) -> Prediction:
        """P(like) per event from the current tables, without learning anything.

        ``running``: labelled events in stream order (prequential evaluation); see :meth:`inputs`.
        """
        user_rows, item_rows = self.lookup(events)
        logits = self.scorer(self.inputs(events, user_rows, item_rows, running))
        return Prediction(
            probabilities=torch.sigmoid(logits).double().numpy(),
            user_known=(user_rows >= 0).numpy(),
            item_known=(item_rows >= 0).numpy(),
        )

    def global_rate(self) -> float:
        """Smoothed share of liked events so far."""
        events, likes = self.global_counts
        return (likes + 1.0) / (events + 2.0)

    @staticmethod
    def _counts(
        table: EmbeddingRows, rows: torch.Tensor, events: Sequence[Event], field: str, running: bool
    ) -> torch.Tensor:
        counts = table.counts[rows.clamp(min=0)] * (rows >= 0).unsqueeze(1)
        if not running:
            return counts
        earlier = torch.zeros_like(counts)
        seen: dict[Any, tuple[float, float]] = {}
        for position, event in enumerate(events):
            key = event.get(field)
            if key is None:
                continue
            n, likes = seen.get(key, (0.0, 0.0))
            earlier[position, 0], earlier[position, 1] = n, likes
            seen[key] = (n + 1.0, likes + float(event["label"]))
        return counts + earlier

    def _rates(self, user_counts: torch.Tensor, item_counts: torch.Tensor) -> torch.Tensor:
        prior = self.global_rate()
        weight = self.config.prior_weight
        columns = []
        for counts in (user_counts, item_counts):
            rate = (counts[:, 1] + weight * prior) / (counts[:, 0] + weight)
            columns.append((torch.log(rate) - torch.log1p(-rate), torch.log1p(counts[:, 0])))
        (user_logit, user_n), (item_logit, item_n) = columns
        global_logit = torch.full_like(user_logit, math.log(prior / (1.0 - prior)))
        return torch.stack([user_logit, item_logit, global_logit, user_n, item_n], dim=1).float()
