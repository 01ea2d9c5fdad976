"""The servable hybrid model: ID mappings, row tables, the dense scorer and a text embedder.

This is what a version holds and what the inference server scores with; the trainer wraps it
in :class:`~streamtune.modeling.hybrid.learner.HybridLearner`, which adds optimizers and
admission. Events are mappings with ``user_id`` (already pseudonymised), ``item_id``, ``text``
and ``context``; absent or unknown ids score through the rate prior and the text terms.

Keys live in up to five key spaces, each an :class:`IdMapping` plus an :class:`EmbeddingRows`:
``users`` and ``items`` (bias and factors); with text ``words`` (each word of the item text,
bias and factors; an event has several, see :mod:`~streamtune.modeling.hybrid.words`) and, when
on, ``kinds`` (the SimHash bucket of the item text) and ``user_kinds`` (user and bucket), which
carry a bias and running counts only.
"""

from __future__ import annotations

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
from streamtune.modeling.hybrid.table import EmbeddingRows, advance
from streamtune.modeling.hybrid.text_buckets import TextBuckets
from streamtune.modeling.hybrid.text_embeddings import TextEmbedder
from streamtune.modeling.hybrid.words import WORDS, bag_layout, text_words

Event = Mapping[str, Any]
# Key space -> one key (or None) per event; for WORDS, the tuple of the event's words.
Keys = dict[str, list[Any]]
USER_KIND_SEPARATOR = "\x1f"


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
        shapes = {"users": (config.user_rows, config.factors), "items": (config.item_rows, config.factors)}
        if config.use_text and config.kind_bits > 0:
            shapes |= {"kinds": (2**config.kind_bits, 0), "user_kinds": (config.user_kind_rows, 0)}
            self.buckets = TextBuckets(config.text_dim, config.kind_bits, config.seed)
        if config.use_text and config.word_rows > 0:
            shapes[WORDS] = (config.word_rows, config.factors)
        self.mappings = {
            space: IdMapping(rows, config.admit_after, config.expire_after) for space, (rows, _) in shapes.items()
        }
        self.tables = {
            space: EmbeddingRows(rows, factors, config.init_std, generator, config.recent_decays)
            for space, (rows, factors) in shapes.items()
        }
        self.scorer = HybridScorer(config)
        self.global_counts = [0.0, 0.0]  # events, likes: the prior every rate is pulled towards

    @property
    def users(self) -> IdMapping:
        return self.mappings["users"]

    @property
    def items(self) -> IdMapping:
        return self.mappings["items"]

    @property
    def user_table(self) -> EmbeddingRows:
        return self.tables["users"]

    @property
    def item_table(self) -> EmbeddingRows:
        return self.tables["items"]

    def texts(self, events: Sequence[Event]) -> dict[str, torch.Tensor]:
        """Item text and liked/disliked history vectors of the events (empty without text)."""
        if self.embedder is None:
            return {}
        contexts = [str(e.get("context") or "") for e in events]
        item_texts = [str(e.get("text") or "") for e in events]
        liked, disliked = context_vectors(contexts, self.embedder, item_texts)
        item = self.embedder.embed(item_texts)
        return {
            "item": torch.from_numpy(item),
            "liked": torch.from_numpy(liked),
            "disliked": torch.from_numpy(disliked),
        }

    def keys(self, events: Sequence[Event], texts: dict[str, torch.Tensor]) -> Keys:
        """Each event's key in every key space (``None`` where it has none)."""
        users = [str(e["user_id"]) if e.get("user_id") is not None else None for e in events]
        keys: Keys = {
            "users": users,
            "items": [str(e["item_id"]) if e.get("item_id") is not None else None for e in events],
        }
        if WORDS in self.mappings:
            limit = self.config.max_words
            keys[WORDS] = [text_words(str(e.get("text") or ""), limit) for e in events]
        if "kinds" in self.mappings:
            kinds = [None if b is None else str(b) for b in self.buckets.of(texts["item"].numpy())]
            keys["kinds"] = kinds
            keys["user_kinds"] = [
                None if user is None or kind is None else f"{user}{USER_KIND_SEPARATOR}{kind}"
                for user, kind in zip(users, kinds, strict=True)
            ]
        return keys

    def lookup(self, keys: Keys) -> dict[str, torch.Tensor]:
        """Rows of the keys (UNKNOWN when absent; for WORDS one per word, flattened); changes nothing."""
        return {
            space: torch.tensor(
                [UNKNOWN if key is None else self.mappings[space].row(key) for key in flat_keys(space, space_keys)],
                dtype=torch.long,
            )
            for space, space_keys in keys.items()
        }

    def inputs(
        self,
        keys: Keys,
        rows: dict[str, torch.Tensor],
        texts: dict[str, torch.Tensor],
        labels: Sequence[float] | None = None,
    ) -> DenseInputs:
        """The scorer's inputs; the row values are fresh leaves that collect gradients.

        With ``labels`` (events in stream order), each event's like-counts include the earlier
        events of the same batch with the same key, so event *t* sees exactly the labels of
        events before *t*, as a per-event counter would.
        """
        # Words carry no like-counts: their rows learn, their rates would only repeat the item's.
        counts = {space: self._counts(space, rows[space], keys[space], labels) for space in keys if space != WORDS}
        word_events, word_weights = bag_layout(keys[WORDS]) if WORDS in keys else (None, None)
        return DenseInputs(
            rows={space: self.tables[space].gather(space_rows) for space, space_rows in rows.items()},
            rates=self._rates(counts, self._global_rates(len(keys["users"]), labels)),
            text_item=texts.get("item"),
            text_liked=texts.get("liked"),
            text_disliked=texts.get("disliked"),
            word_events=word_events,
            word_weights=word_weights,
        )

    @torch.no_grad()
    def predict(self, events: Sequence[Event], running: bool = False) -> Prediction:
        """P(like) per event from the current tables, without learning anything.

        ``running``: the events are labelled and in stream order (prequential evaluation), and
        each may use the labels of the batch's earlier events; see :meth:`inputs`.
        """
        texts = self.texts(events)
        keys = self.keys(events, texts)
        rows = self.lookup(keys)
        labels = [float(e["label"]) for e in events] if running else None
        logits = self.scorer(self.inputs(keys, rows, texts, labels))
        return Prediction(
            probabilities=torch.sigmoid(logits).double().numpy(),
            user_known=(rows["users"] >= 0).numpy(),
            item_known=(rows["items"] >= 0).numpy(),
        )

    def global_rate(self) -> float:
        """Smoothed share of liked events so far."""
        events, likes = self.global_counts
        return (likes + 1.0) / (events + 2.0)

    def _counts(
        self, space: str, rows: torch.Tensor, keys: list[str | None], labels: Sequence[float] | None
    ) -> torch.Tensor:
        table = self.tables[space]
        counts = table.counts[rows.clamp(min=0)] * (rows >= 0).unsqueeze(1)
        if labels is None:
            return counts
        before = counts.tolist()
        latest: dict[str, list[float]] = {}
        for position, key in enumerate(keys):
            if key is None:
                continue
            if key in latest:
                before[position] = latest[key]
            latest[key] = advance(before[position], labels[position], self.config.recent_decays)
        return torch.tensor(before, dtype=counts.dtype)

    def _global_rates(self, size: int, labels: Sequence[float] | None) -> torch.Tensor:
        events, likes = self.global_counts
        earlier_likes = torch.zeros(size, dtype=torch.float64)
        earlier_events = torch.zeros(size, dtype=torch.float64)
        if labels is not None and size:
            earlier_likes[1:] = torch.tensor(labels[:-1], dtype=torch.float64).cumsum(0)
            earlier_events = torch.arange(size, dtype=torch.float64)
        return (likes + earlier_likes + 1.0) / (events + earlier_events + 2.0)

    def _rates(self, counts: dict[str, torch.Tensor], prior: torch.Tensor) -> torch.Tensor:
        """Lifetime and recent like-rate logits, log-counts; see the scorer's docstring."""
        weight = self.config.prior_weight
        lifetime, recent = {}, {}
        for space, space_counts in counts.items():
            lifetime[space] = _logit((space_counts[:, 1] + weight * prior) / (space_counts[:, 0] + weight))
            recent[space] = [
                _logit((space_counts[:, column + 1] + weight * prior) / (space_counts[:, column] + weight))
                for column in range(2, space_counts.shape[1], 2)
            ]
        global_logit = _logit(prior)
        features = [lifetime["users"], lifetime["items"], global_logit]
        features += [torch.log1p(counts["users"][:, 0]), torch.log1p(counts["items"][:, 0])]
        features += recent["users"] + recent["items"]
        for space in ("kinds", "user_kinds"):
            if space in counts:
                features += [lifetime[space], *recent[space]]
        return torch.stack(features, dim=1).float()


def flat_keys(space: str, space_keys: list[Any]) -> list[str | None]:
    """One key per row lookup: the events' keys, or for WORDS every event's words in turn."""
    return [word for words in space_keys for word in words] if space == WORDS else space_keys


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)
