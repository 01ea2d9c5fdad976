"""The no-learning floor: score an event by the running like-rates of its user and its item.

Each rate is a Beta-smoothed mean pulled towards the running global rate (``prior_weight``
pseudo-events), and the two are combined as independent evidence in log-odds space::

    logit p = logit r_user + logit r_item - logit r_global

Counts are updated only after an event has been scored (prequential: test, then train), so a
user or item seen for the first time scores the global rate. Every learner must beat this.

References
----------
Gama, J., Sebastião, R., Rodrigues, P. P. (2013). On evaluating stream learning algorithms.
Machine Learning 90(3):317-346 (prequential evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


class PopularityScorer:
    """Running per-user and per-item like-rates; ``predict_one`` then ``learn_one`` per event.

    Parameters
    ----------
    prior_weight
        Pseudo-events of the global rate mixed into each user's and item's rate.

    Examples
    --------
    >>> scorer = PopularityScorer()
    >>> for _ in range(20):
    ...     _ = scorer.learn_one("fan", "film", 1).learn_one("critic", "film", 0)
    >>> scorer.predict_one("fan", "film") > 0.5 > scorer.predict_one("critic", "film")
    True
    """

    def __init__(self, prior_weight: float = 2.0) -> None:
        self.prior_weight = prior_weight
        self._users: dict[str, list[int]] = {}  # key -> [events, likes]
        self._items: dict[str, list[int]] = {}
        self._events = 0
        self._likes = 0

    def predict_one(self, user_id: str, item_id: str) -> float:
        """P(like) from the counts seen so far."""
        global_rate = (self._likes + 1.0) / (self._events + 2.0)
        user = self._smoothed(self._users.get(user_id), global_rate)
        item = self._smoothed(self._items.get(item_id), global_rate)
        logit = _logit(user) + _logit(item) - _logit(global_rate)
        return 1.0 / (1.0 + math.exp(-logit))

    def learn_one(self, user_id: str, item_id: str, label: int) -> PopularityScorer:
        """Count one labelled event."""
        for book, key in ((self._users, user_id), (self._items, item_id)):
            counts = book.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += int(label)
        self._events += 1
        self._likes += int(label)
        return self

    def _smoothed(self, counts: list[int] | None, global_rate: float) -> float:
        events, likes = counts if counts is not None else (0, 0)
        return (likes + self.prior_weight * global_rate) / (events + self.prior_weight)


def popularity_probabilities(events: Iterable[Mapping[str, Any]], prior_weight: float = 2.0) -> np.ndarray:
    """Prequential P(like) per event, each scored before it is counted."""
    scorer = PopularityScorer(prior_weight)
    probabilities = []
    for event in events:
        user, item = str(event["user_id"]), str(event["item_id"])
        probabilities.append(scorer.predict_one(user, item))
        scorer.learn_one(user, item, int(event["label"]))
    return np.asarray(probabilities, dtype=np.float64)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))
