"""The trainer side of the hybrid family: admission, sparse and dense optimizers, forgetting.

One :meth:`HybridLearner.learn` call is one micro-batch: count sightings (admitting keys that
have been seen enough), take one gradient step — Adagrad on the rows the batch touched, AdamW
on the dense part — then add the batch's labels to the running counts, so a score never sees
its own label. Prequential use is ``predict`` then ``learn`` on each micro-batch.

Trainer-only state (never shipped to a server): Adagrad accumulators, AdamW moments, admission
counters and last-seen clocks; :meth:`HybridLearner.trainer_state` /
:meth:`HybridLearner.load_trainer_state` persist and restore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from streamtune.modeling.hybrid.id_mapping import UNKNOWN, IdMapping
from streamtune.modeling.hybrid.model import Event, HybridModel, Prediction
from streamtune.modeling.hybrid.optimizer import SparseAdagrad
from streamtune.modeling.hybrid.table import EmbeddingRows


class HybridLearner:
    """Online training of a :class:`HybridModel` in micro-batches.

    Parameters
    ----------
    model
        The model to train in place.

    Examples
    --------
    >>> from streamtune.modeling.hybrid.config import HybridConfig
    >>> learner = HybridLearner(HybridModel(HybridConfig(use_text=False, user_rows=8, item_rows=8)))
    >>> batch = [{"user_id": "u1", "item_id": "i1", "label": 1}]
    >>> loss = learner.learn(batch)
    >>> bool(learner.predict(batch).user_known[0])
    True
    """

    def __init__(self, model: HybridModel) -> None:
        self.model = model
        config = model.config
        self.user_optimizer = SparseAdagrad(model.user_table, config.sparse_lr)
        self.item_optimizer = SparseAdagrad(model.item_table, config.sparse_lr)
        self.dense_optimizer = torch.optim.AdamW(
            model.scorer.parameters(), lr=config.dense_lr, weight_decay=config.weight_decay
        )
        self.clock = 0  # events learned; the default expiry clock

    def predict(self, events: Sequence[Event], running: bool = False) -> Prediction:
        """Score with the current tables (see :meth:`HybridModel.predict`)."""
        return self.model.predict(events, running)

    def learn(self, events: Sequence[Event], now: int | None = None) -> float:
        """One training step on labelled ``events``; returns the batch's summed log-loss.

        ``now`` is the expiry clock (e.g. the newest event time); by default the count of
        events learned so far.
        """
        if not events:
            return 0.0
        self.clock += len(events)
        now = self.clock if now is None else now
        model = self.model
        user_rows = self._admit(model.users, model.user_table, self.user_optimizer, events, "user_id", now)
        item_rows = self._admit(model.items, model.item_table, self.item_optimizer, events, "item_id", now)
        labels = torch.tensor([float(e["label"]) for e in events])

        inputs = model.inputs(events, user_rows, item_rows, running=True)
        logits = model.scorer(inputs)
        # Summed, not averaged: each row's gradient is then its own events', whatever the batch size.
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
        self.dense_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dense_optimizer.step()
        self.user_optimizer.step(user_rows, inputs.user.grad)
        self.item_optimizer.step(item_rows, inputs.item.grad)

        model.user_table.count(user_rows, labels)
        model.item_table.count(item_rows, labels)
        model.global_counts[0] += len(events)
        model.global_counts[1] += float(labels.sum())
        self._expire(now)
        return float(loss.detach())

    def forget_user(self, user_key: str) -> bool:
        """Remove a (pseudonymised) user's row, counts, optimizer state and admission count.

        Returns whether the user had a row. The next delta clears the row on servers too.
        """
        row = self.model.users.remove(user_key)
        if row is None:
            return False
        self.model.user_table.clear([row])
        self.user_optimizer.reset([row])
        return True

    def trainer_state(self) -> dict[str, Any]:
        """Optimizer state, admission counters and clocks (trainer-only, not for servers)."""
        return {
            "clock": self.clock,
            "users": self.model.users.state_dict(),
            "items": self.model.items.state_dict(),
            "user_accumulators": self.user_optimizer.accumulators.clone(),
            "item_accumulators": self.item_optimizer.accumulators.clone(),
            "dense_optimizer": self.dense_optimizer.state_dict(),
        }

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`trainer_state` onto a learner whose model came from the same version."""
        self.clock = int(state["clock"])
        self.model.users = IdMapping.from_state_dict(state["users"])
        self.model.items = IdMapping.from_state_dict(state["items"])
        self.user_optimizer.accumulators.copy_(state["user_accumulators"])
        self.item_optimizer.accumulators.copy_(state["item_accumulators"])
        self.dense_optimizer.load_state_dict(state["dense_optimizer"])

    def _admit(
        self,
        mapping: IdMapping,
        table: EmbeddingRows,
        optimizer: SparseAdagrad,
        events: Sequence[Event],
        field: str,
        now: int,
    ) -> torch.Tensor:
        rows = []
        fresh = []
        for event in events:
            key = event.get(field)
            if key is None:
                rows.append(UNKNOWN)
                continue
            sighting = mapping.observe(str(key), now)
            rows.append(sighting.row)
            if sighting.fresh:
                fresh.append(sighting.row)
        table.reset(fresh)
        optimizer.reset(fresh)
        return torch.tensor(rows, dtype=torch.long)

    def _expire(self, now: int) -> None:
        model = self.model
        for mapping, table, optimizer in (
            (model.users, model.user_table, self.user_optimizer),
            (model.items, model.item_table, self.item_optimizer),
        ):
            freed = [row for _, row in mapping.expire(now)]
            table.clear(freed)
            optimizer.reset(freed)
