from __future__ import annotations

import doctest
import math
import random

import numpy as np
import pytest

from streamtune.evaluation import EvaluationError, log_loss, river_baselines, roc_auc
from streamtune.evaluation.river_baselines import (
    build_model,
    fm_features,
    logreg_features,
    prequential_probabilities,
    run_river_baselines,
)

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]


def synthetic_events(n: int = 3000, seed: int = 1, main_effects: bool = True) -> list[dict]:
    """A stream with learnable signal.

    Each user likes two genres (an interaction only a factorisation machine can represent);
    with ``main_effects`` users also differ in generosity and genres in popularity, which a
    linear model can learn too.
    """
    rng = random.Random(seed)
    tastes = {user: set(rng.sample(GENRES, 2)) for user in range(40)}
    generosity = {user: rng.choice([-1.5, 1.5]) if main_effects else 0.0 for user in range(40)}
    popularity = {genre: rng.uniform(-1, 1) if main_effects else 0.0 for genre in GENRES}
    genre_of = {item: GENRES[item % len(GENRES)] for item in range(60)}
    events = []
    for index in range(n):
        user, item = rng.randrange(40), rng.randrange(60)
        genre = genre_of[item]
        logit = generosity[user] + popularity[genre] + (2.0 if genre in tastes[user] else -1.0)
        events.append(
            {
                "event_id": f"e{index}",
                "user_id": str(user),
                "item_id": str(item),
                "ts": 1_500_000_000_000 + index * 60_000,
                "text": f"Film {item} (2001) | {genre}",
                "context": "",
                "label": int(rng.random() < 1 / (1 + math.exp(-logit))),
            }
        )
    return events


def test_doctests() -> None:
    assert doctest.testmod(river_baselines).failed == 0


def test_features_of_a_movielens_event() -> None:
    event = {
        "user_id": "7",
        "item_id": "42",
        "text": "Heat (1995) | Action, Crime | tags: heist",
        "context": "liked: Alien (1979) | disliked: Cats (2019)",
    }

    assert fm_features(event) == {
        "user=7": 1.0,
        "item=42": 1.0,
        "genre=Action": 1.0,
        "genre=Crime": 1.0,
    }
    x = logreg_features(event)
    assert {"user=7", "item=42", "text:heat", "text:heist", "context:liked:alien"} <= set(x)
    assert "context:disliked:cats" in x and "context:liked:cats" not in x


@pytest.mark.parametrize("kind", ["logreg", "fm"])
def test_models_learn_a_learnable_stream(kind: str) -> None:
    events = synthetic_events()
    labels = [e["label"] for e in events]
    model, features = build_model(kind, seed=0)

    probabilities, _ = prequential_probabilities(model, features, events)

    assert probabilities.shape == (len(events),)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    half = len(events) // 2
    assert roc_auc(labels[half:], probabilities[half:]) > 0.6


def test_factorisation_machine_learns_user_genre_affinity_logreg_cannot() -> None:
    events = synthetic_events(10_000, main_effects=False)
    labels = [e["label"] for e in events]
    tail = slice(-3000, None)

    fm, _ = prequential_probabilities(*build_model("fm", seed=0), events)
    logreg, _ = prequential_probabilities(*build_model("logreg", seed=0), events)

    assert roc_auc(labels[tail], fm[tail]) > 0.7
    assert roc_auc(labels[tail], logreg[tail]) < 0.6


def test_scores_agree_with_rivers_own_metric_and_are_reproducible() -> None:
    events = synthetic_events(800)
    labels = [e["label"] for e in events]

    first, river_logloss = prequential_probabilities(*build_model("fm", seed=3), events)
    again, _ = prequential_probabilities(*build_model("fm", seed=3), events)
    other, _ = prequential_probabilities(*build_model("fm", seed=4), events)

    assert log_loss(labels, first) == pytest.approx(river_logloss, rel=1e-9)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_run_names_results_and_scores_windows() -> None:
    results = run_river_baselines(synthetic_events(1200), seed=0, window=500, by_year=True)

    assert [r.name for r in results] == ["river_logreg", "river_fm"]
    for result in results:
        assert result.n == 1200
        assert [w.n for w in result.windows] == [500, 500, 200]
        assert [w.label for w in result.years] == ["2017"]
        assert result.wall_seconds is not None and result.wall_seconds > 0
        assert result.params["seed"] == 0


def test_unknown_model_is_refused() -> None:
    with pytest.raises(EvaluationError, match="unknown River model"):
        build_model("forest", seed=0)
