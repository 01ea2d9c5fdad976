from __future__ import annotations

import doctest
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamtune.evaluation import (
    Breakdown,
    EvaluationError,
    RunRecord,
    log_loss,
    roc_auc,
    score_contender,
    scoring,
    windowed_scores,
    yearly_scores,
)

MS_2019 = 1_546_300_800_000  # 2019-01-01T00:00:00Z
MS_2020 = 1_577_836_800_000  # 2020-01-01T00:00:00Z


def pairwise_auc(labels: list[int], scores: list[float]) -> float:
    """The definition: P(score of a positive > score of a negative), ties count 1/2."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_doctests() -> None:
    assert doctest.testmod(scoring).failed == 0


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # 3 of 4 pairs ordered right
        ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.875),  # one tied pair counts 1/2
        ([0, 1], [0.5, 0.5], 0.5),  # all tied
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
        ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0),
        ([True, False, True], [3.0, -1.0, 0.0], 1.0),  # booleans, unbounded scores
    ],
)
def test_auc_matches_hand_computed_values(labels: list, scores: list, expected: float) -> None:
    assert roc_auc(labels, scores) == pytest.approx(expected)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], []])
def test_auc_is_undefined_for_one_class(labels: list[int]) -> None:
    assert roc_auc(labels, [0.5] * len(labels)) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0])),
        min_size=2,
        max_size=40,
    )
)
def test_auc_equals_the_pairwise_definition(pairs: list[tuple[int, float]]) -> None:
    labels, scores = [y for y, _ in pairs], [s for _, s in pairs]
    if len(set(labels)) < 2:
        assert roc_auc(labels, scores) is None
    else:
        assert roc_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))


def test_log_loss_matches_hand_computed_values() -> None:
    assert log_loss([1, 0], [0.8, 0.3]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    assert log_loss([1, 1, 0], [0.5, 0.5, 0.5]) == pytest.approx(math.log(2))
    assert log_loss([], []) is None


def test_log_loss_clips_certain_mistakes_to_a_finite_value() -> None:
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))
    assert log_loss([0], [1.0], eps=1e-7) == pytest.approx(-math.log(1e-7))
    assert log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log1p(-1e-15))


def test_against_scikit_learn_when_available() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500), 2)  # rounded: plenty of ties
    assert roc_auc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels, scores))
    assert log_loss(labels, scores) == pytest.approx(metrics.log_loss(labels, scores), rel=1e-6)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1], [0.5], "equal length"),
        ([0, 2], [0.5, 0.5], "0/1"),
        ([0, 1], [0.5, float("nan")], "finite"),
    ],
)
def test_bad_inputs_raise_a_named_error(labels: list, scores: list, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        roc_auc(labels, scores)


def test_log_loss_refuses_values_that_are_not_probabilities() -> None:
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        log_loss([0, 1], [-0.1, 0.5])


def test_windows_cover_the_stream_in_order_with_a_short_last_window() -> None:
    labels = [0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1]
    probs = [0.2, 0.8, 0.3, 0.7, 0.6, 0.9, 0.4, 0.1, 0.2, 0.8, 0.5, 0.5]
    ts = list(range(1000, 13000, 1000))

    windows = windowed_scores(labels, probs, window=5, timestamps=ts)

    assert [(w.label, w.start, w.stop, w.n, w.positives) for w in windows] == [
        ("0-4", 0, 5, 5, 3),
        ("5-9", 5, 10, 5, 2),
        ("10-11", 10, 12, 2, 2),
    ]
    assert windows[0].auc == 1.0
    assert windows[1].auc == pytest.approx(pairwise_auc(labels[5:10], probs[5:10]))
    assert windows[2].auc is None  # one class only
    assert windows[2].logloss == pytest.approx(math.log(2))
    assert (windows[1].first_ts, windows[1].last_ts) == (6000, 10000)
    assert windowed_scores([], [], window=5) == []
    with pytest.raises(EvaluationError, match="window"):
        windowed_scores(labels, probs, window=0)


def test_yearly_scores_group_utc_calendar_years() -> None:
    ts = [MS_2019 - 1, MS_2019, MS_2019 + 5, MS_2020, MS_2020 + 1]
    years = yearly_scores([0, 1, 0, 1, 0], [0.1, 0.9, 0.2, 0.4, 0.6], ts)

    assert [(w.label, w.start, w.stop) for w in years] == [
        ("2018", 0, 1),
        ("2019", 1, 3),
        ("2020", 3, 5),
    ]
    assert years[1].auc == 1.0 and years[2].auc == 0.0
    with pytest.raises(EvaluationError, match="time order"):
        yearly_scores([0, 1], [0.1, 0.2], [MS_2020, MS_2019])


def test_contender_result_is_json_ready() -> None:
    result = score_contender(
        "river_logreg",
        [1, 1, 0, 1],
        [0.9, 0.6, 0.4, 0.7],
        Breakdown(window=2, timestamps=[MS_2019, MS_2019, MS_2020, MS_2020], by_year=True),
        RunRecord(wall_seconds=1.5, params={"seed": 0}),
    )

    document = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert document["name"] == "river_logreg"
    assert (document["n"], document["auc"], document["wall_seconds"]) == (4, 1.0, 1.5)
    assert [w["auc"] for w in document["windows"]] == [None, 1.0]
    assert [w["label"] for w in document["years"]] == ["2019", "2020"]
    with pytest.raises(EvaluationError, match="timestamps"):
        score_contender("x", [0, 1], [0.1, 0.9], Breakdown(by_year=True))
