"""River's online models as baselines on the same event stream as the transformer contenders.

Two learners, each run through River's own prequential loop
(:func:`river.evaluate.iter_progressive_val_score`: ``predict_proba_one`` then ``learn_one`` per
event), with every per-event probability kept so :mod:`streamtune.evaluation.scoring` scores
them exactly as it scores the other contenders:

- ``river_logreg``: logistic regression on hashed features — the user, the item, the words of
  the event text and the words of each section of the context ("liked: …", "disliked: …").
- ``river_fm``: a factorisation machine on one-hot user, item and genres, which learns
  user x item and user x genre affinities (Rendle, 2010).

References
----------
Montiel, J. et al. (2021). River: machine learning for streaming data in Python. JMLR 22(110).
Rendle, S. (2010). Factorization Machines. IEEE ICDM, 995-1000.
Weinberger, K. et al. (2009). Feature Hashing for Large Scale Multitask Learning. ICML.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from streamtune.evaluation.errors import EvaluationError
from streamtune.evaluation.score_options import Breakdown, RunRecord
from streamtune.evaluation.scoring import ContenderResult, score_contender

logger = logging.getLogger(__name__)

RIVER_MODELS = ("logreg", "fm")
Features = dict[str, float]
_WORD = re.compile(r"[^\W_]{2,}")  # words of two letters/digits or more, any script


def text_tokens(text: str) -> list[str]:
    """Distinct lower-case words of ``text`` in first-seen order.

    >>> text_tokens("Heat (1995) | Action, Crime | tags: heist, Heist")
    ['heat', '1995', 'action', 'crime', 'tags', 'heist']
    """
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def context_tokens(context: str) -> list[str]:
    """Words of a context, each prefixed by its section (``"liked: A; B | disliked: C"``).

    A part without a ``name:`` heading is filed under ``ctx``.

    >>> context_tokens("liked: Heat (1995) | disliked: Cats (2019)")
    ['liked:heat', 'liked:1995', 'disliked:cats', 'disliked:2019']
    """
    found: dict[str, None] = {}
    for part in context.split(" | "):
        section, sep, body = part.partition(": ")
        if not sep:
            section, body = "ctx", part
        for word in text_tokens(body):
            found[f"{section.strip().lower()}:{word}"] = None
    return list(found)


def genres(text: str) -> list[str]:
    """Genres from a MovieLens event text (``"Title (year) | Genre1, Genre2 | tags: …"``).

    Texts without a genre part (other datasets, films with no genres) give an empty list.

    >>> genres("Heat (1995) | Action, Crime | tags: heist")
    ['Action', 'Crime']
    """
    parts = text.split(" | ")
    if len(parts) < 2 or parts[1].startswith("tags: "):
        return []
    return [genre.strip() for genre in parts[1].split(",") if genre.strip()]


def logreg_features(event: Mapping[str, Any]) -> Features:
    """Sparse binary features of one event for the logistic regression (hashed later)."""
    x: Features = {f"user={event['user_id']}": 1.0, f"item={event['item_id']}": 1.0}
    for word in text_tokens(event.get("text") or ""):
        x[f"text:{word}"] = 1.0
    for word in context_tokens(event.get("context") or ""):
        x[f"context:{word}"] = 1.0
    return x


def fm_features(event: Mapping[str, Any]) -> Features:
    """One-hot user, item and genres of one event for the factorisation machine."""
    x: Features = {f"user={event['user_id']}": 1.0, f"item={event['item_id']}": 1.0}
    for genre in genres(event.get("text") or ""):
        x[f"genre={genre}"] = 1.0
    return x


def build_model(kind: str, seed: int) -> tuple[Any, Callable[[Mapping[str, Any]], Features]]:
    """A fresh River model of ``kind`` (see :data:`RIVER_MODELS`) and its feature function.

    Hyper-parameters are fixed, not searched on the evaluation stream (a baseline tuned on its
    test stream would not be a fair peer): the logistic regression keeps River's default SGD
    step of 0.01; the factorisation machine uses 0.05 with small initial factors, because its
    one-hot features are few per event (about five) and River's 0.01 learns them too slowly.
    """
    from river import compose, facto, linear_model, optim, preprocessing

    if kind == "logreg":
        model = compose.Pipeline(
            preprocessing.FeatureHasher(n_features=2**18, seed=seed),
            linear_model.LogisticRegression(optimizer=optim.SGD(0.01), l2=1e-5),
        )
        return model, logreg_features
    if kind == "fm":
        model = facto.FMClassifier(
            n_factors=8,
            weight_optimizer=optim.SGD(0.05),
            latent_optimizer=optim.SGD(0.05),
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.05, seed=seed),
            l2_weight=1e-5,
            l2_latent=1e-5,
            seed=seed,
        )
        return model, fm_features
    raise EvaluationError(f"unknown River model {kind!r}; choose from {', '.join(RIVER_MODELS)}")


def prequential_probabilities(
    model: Any,
    features: Callable[[Mapping[str, Any]], Features],
    events: Iterable[Mapping[str, Any]],
) -> tuple[np.ndarray, float]:
    """Test-then-train ``model`` over ``events`` with River's progressive validation.

    Returns
    -------
    probabilities, river_logloss
        P(label = 1) per event as predicted *before* learning it, and River's own running
        log-loss at the end (a cross-check of :func:`streamtune.evaluation.scoring.log_loss`).
    """
    from river import evaluate, metrics

    def stream() -> Iterator[tuple[Features, bool]]:
        for event in events:
            yield features(event), bool(event["label"])

    metric = metrics.LogLoss()
    probabilities = [
        # An untrained classifier may answer {}: no opinion, which is a probability of 0.5.
        step["Prediction"].get(True, 0.5) if step["Prediction"] else 0.5
        for step in evaluate.iter_progressive_val_score(stream(), model, metric, step=1, yield_predictions=True)
    ]
    return np.asarray(probabilities, dtype=np.float64), metric.get()


def run_river_baselines(
    events: Sequence[Mapping[str, Any]],
    *,
    models: Sequence[str] = RIVER_MODELS,
    seed: int = 0,
    window: int = 5000,
    by_year: bool = False,
) -> list[ContenderResult]:
    """Evaluate each River model prequentially on ``events`` (in stream order).

    Parameters
    ----------
    events
        Events with ``user_id``, ``item_id``, ``text``, ``context``, ``label`` and ``ts``.
    models
        Which of :data:`RIVER_MODELS` to run; results are named ``river_<model>``.
    seed
        Seeds hashing and latent-factor initialisation; equal seeds give equal results.
    window, by_year
        Passed to :func:`streamtune.evaluation.scoring.score_contender`.
    """
    labels = np.fromiter((int(event["label"]) for event in events), dtype=np.int8, count=len(events))
    timestamps = np.fromiter((int(event["ts"]) for event in events), dtype=np.int64, count=len(events))
    results = []
    for kind in models:
        model, features = build_model(kind, seed)
        started = time.perf_counter()
        probabilities, river_logloss = prequential_probabilities(model, features, events)
        elapsed = time.perf_counter() - started
        name = f"river_{kind}"
        result = score_contender(
            name,
            labels,
            probabilities,
            Breakdown(window=window, timestamps=timestamps, by_year=by_year),
            RunRecord(elapsed, {"library": "river", "model": repr(model), "seed": seed}),
        )
        logger.info(
            "%s: %d events in %.1f s, AUC %s, log-loss %s (River's LogLoss %.6f)",
            name, result.n, elapsed, result.auc, result.logloss, river_logloss,
        )  # fmt: skip
        results.append(result)
    return results
