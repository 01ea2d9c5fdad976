"""The trainer side of the hybrid family: admission, sparse and dense optimizers, forgetting.

One :meth:`HybridLearner.learn` call is one micro-batch: count sightings (admitting keys that
have been seen enough), take one gradient step — Adagrad on the rows the batch touched, AdamW
on the dense part — then add the batch's labels to the running counts, so a score never sees
its own label. Prequential use is ``predict`` then ``learn`` on each micro-batch.

Trainer-only state (never shipped to a server): Adagrad accumulators, AdamW moments (of the
dense part and, with the slow path, of the encoder's adapters), admission counters and
last-seen clocks; :meth:`HybridLearner.trainer_state` /
:meth:`HybridLearner.load_trainer_state` persist and restore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamtune.modeling.hybrid.id_mapping import UNKNOWN, IdMapping
from streamtune.modeling.hybrid.model import USER_KIND_SEPARATOR, Event, HybridModel, Prediction, flat_keys
from streamtune.modeling.hybrid.optimizer import SparseAdagrad
from streamtune.modeling.hybrid.slow_path import EncoderTuner
from streamtune.modeling.hybrid.words import WORDS


class HybridLearner:
    """Online training of a :class:`HybridModel` in micro-batches.

    Parameters
    ----------
    model
        The model to train in place.
    tuner
        The slow path (LoRA steps on the text encoder, one batch in N), or None.

    Examples
    --------
    >>> from streamtune.modeling.hybrid.config import HybridConfig
    >>> learner = HybridLearner(HybridModel(HybridConfig(use_text=False, user_rows=8, item_rows=8)))
    >>> batch = [{"user_id": "u1", "item_id": "i1", "label": 1}]
    >>> loss = learner.learn(batch)
    >>> bool(learner.predict(batch).user_known[0])
    True
    """

    def __init__(self, model: HybridModel, tuner: EncoderTuner | None = None) -> None:
        self.model = model
        self.tuner = tuner
        config = model.config
        self.sparse_optimizers = {
            space: SparseAdagrad(table, config.sparse_lr, decay=config.sparse_decay)
            for space, table in model.tables.items()
        }
        self.dense_optimizer = torch.optim.AdamW(
            model.scorer.parameters(), lr=config.dense_lr, weight_decay=config.weight_decay
        )
        self.clock = 0  # events learned; the default expiry clock
        self.last_probabilities = np.zeros(0)  # scores of the latest learn() call, before its step

    @property
    def user_optimizer(self) -> SparseAdagrad:
        return self.sparse_optimizers["users"]

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
        if self.tuner is not None:  # before the counts hold this batch's labels
            self.tuner.observe(model, events)
        texts = model.texts(events)
        keys = model.keys(events, texts)
        rows = {space: self._admit(space, flat_keys(space, space_keys), now) for space, space_keys in keys.items()}
        labels = [float(e["label"]) for e in events]

        inputs = model.inputs(keys, rows, texts, labels)
        logits = model.scorer(inputs)
        # The step's own forward pass scores each event before it is learned (prequential).
        self.last_probabilities = torch.sigmoid(logits.detach()).double().numpy()
        # Summed, not averaged: each row's gradient is then its own events', whatever the batch size.
        target = torch.tensor(labels)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
        self.dense_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dense_optimizer.step()
        for space, space_rows in rows.items():
            self.sparse_optimizers[space].step(space_rows, inputs.rows[space].grad)
            if space != WORDS:
                model.tables[space].count(space_rows, target)
        model.global_counts[0] += len(events)
        model.global_counts[1] += float(target.sum())
        self._expire(now)
        return float(loss.detach())

    def forget_user(self, user_key: str) -> bool:
        """Remove a (pseudonymised) user's rows, counts, optimizer state and admission counts.

        That is the user's own row and every (user, kind) row. Returns whether the user had a
        row. The next delta clears the rows on servers too.
        """
        removed = self._remove("users", user_key)
        if "user_kinds" in self.model.mappings:
            prefix = f"{user_key}{USER_KIND_SEPARATOR}"
            for key, _ in self.model.mappings["user_kinds"].items():
                if key.startswith(prefix):
                    self._remove("user_kinds", key)
        return removed

    def trainer_state(self, live_mappings: bool = False) -> dict[str, Any]:
        """Optimizer state, admission counters and clocks (trainer-only, not for servers).

        ``live_mappings``: the key spaces' :class:`IdMapping` objects themselves instead of
        copies as plain values, for a caller that writes them out at once and keeps nothing
        (:func:`~streamtune.modeling.hybrid.trainer_state.encode`, with every version)."""
        mappings = self.model.mappings
        return {
            "clock": self.clock,
            "mappings": dict(mappings) if live_mappings else {space: m.state_dict() for space, m in mappings.items()},
            # Rows at or above a table's high-water mark keep their initial accumulators.
            "accumulators": {
                space: opt.accumulators[: opt.table.used].clone() for space, opt in self.sparse_optimizers.items()
            },
            "dense_optimizer": self.dense_optimizer.state_dict(),
            **({"encoder_tuner": self.tuner.state_dict()} if self.tuner is not None else {}),
        }

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`trainer_state` onto a learner whose model came from the same version."""
        self.clock = int(state["clock"])
        for space, mapping_state in state["mappings"].items():
            self.model.mappings[space] = IdMapping.from_state_dict(mapping_state)
        for space, accumulators in state["accumulators"].items():
            optimizer = self.sparse_optimizers[space]
            optimizer.accumulators.fill_(optimizer.initial_accumulator)
            optimizer.accumulators[: len(accumulators)] = accumulators
            optimizer.table.note_used(len(accumulators))
        self.dense_optimizer.load_state_dict(state["dense_optimizer"])
        if self.tuner is not None and "encoder_tuner" in state:
            self.tuner.load_state_dict(state["encoder_tuner"])

    def _admit(self, space: str, keys: list[str | None], now: int) -> torch.Tensor:
        mapping = self.model.mappings[space]
        rows, fresh = [], []
        for key in keys:
            if key is None:
                rows.append(UNKNOWN)
                continue
            sighting = mapping.observe(key, now)
            rows.append(sighting.row)
            if sighting.fresh:
                fresh.append(sighting.row)
        self.model.tables[space].reset(fresh)
        self.sparse_optimizers[space].reset(fresh)
        return torch.tensor(rows, dtype=torch.long)

    def _remove(self, space: str, key: str) -> bool:
        row = self.model.mappings[space].remove(key)
        if row is None:
            return False
        self.model.tables[space].clear([row])
        self.sparse_optimizers[space].reset([row])
        return True

    def _expire(self, now: int) -> None:
        for space, mapping in self.model.mappings.items():
            freed = [row for _, row in mapping.expire(now)]
            self.model.tables[space].clear(freed)
            self.sparse_optimizers[space].reset(freed)
