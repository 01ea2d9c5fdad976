"""The pure pieces of the trainer: dedupe window, holdout split, gate, drift test, LR schedule,
L2-SP. Milliseconds each, no broker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamtune.modeling.text.learner import LearnerConfig, OnlineLearner
from streamtune.trainer.dedupe import RecentIds
from streamtune.trainer.gate.decision import QualityGate, Score
from streamtune.trainer.gate.holdout import is_holdout
from streamtune.trainer.monitor.page_hinkley import PageHinkley
from streamtune.trainer.optim.l2sp import L2SPPenalty
from streamtune.trainer.optim.lr_schedule import StreamSchedule


def test_dedupe_window_forgets_the_oldest_and_survives_a_round_trip():
    recent = RecentIds(window=3)
    assert [recent.add(i) for i in ["a", "b", "a", "c", "d"]] == [True, True, False, True, True]
    assert "a" not in recent and {"b", "c", "d"} == {i for i in "abcd" if i in recent}
    array = recent.to_array()
    assert array.dtype == np.int64 and array.nbytes == 3 * 8
    restored = RecentIds.from_array(array, window=3)
    assert not restored.add("d") and restored.add("a")
    assert "b" not in restored  # "a" pushed the oldest out, in the original order
    # A smaller window after a restart keeps the newest ids.
    assert [i for i in "abcd" if i in RecentIds.from_array(array, window=1)] == ["d"]


def test_dedupe_window_zero_disables_it():
    recent = RecentIds(window=0)
    assert recent.add("a") and recent.add("a")


def test_holdout_is_a_stable_share_independent_of_the_process():
    ids = [f"user-7:item-{i}" for i in range(20_000)]
    chosen = [i for i in ids if is_holdout(i, 0.1)]
    assert 0.09 < len(chosen) / len(ids) < 0.11
    # The same id is always chosen the same way (BLAKE2b, not Python's salted hash()) ...
    assert is_holdout("crash-0", 0.5) == is_holdout("crash-0", 0.5)
    # ... and a larger share only adds ids: nothing held out at 5% is trained at 10%.
    assert {i for i in ids if is_holdout(i, 0.05)} <= set(chosen)
    assert not any(is_holdout(i, 0.0) for i in ids[:100])


def score(mean, auc=None, examples=100):
    return Score(np.full(examples, mean), auc)


def judge(gate, candidate, published=0.40, reference=None, **case):
    reference = published if reference is None else reference
    examples, aucs = case.get("examples", 100), case.get("aucs", (None, None, None))
    return gate.judge(
        score(candidate, aucs[0], examples), score(published, aucs[1], examples), score(reference, aucs[2], examples)
    )


def gate_with(**overrides):
    return QualityGate(
        **({"tolerance": 0.02, "auc_tolerance": 0.01, "trim": 0.1, "min_examples": 10, "patience": 3} | overrides)
    )


def test_gate_restores_after_patience_rejections_in_a_row():
    gate = gate_with()
    decisions = [judge(gate, c) for c in (0.43, 0.45, 0.41, 0.43, 0.44, 0.47, 0.50)]
    assert [d.publish for d in decisions] == [False, False, True, False, False, False, False]
    assert [d.restore for d in decisions] == [False, False, False, False, False, True, False]
    assert "rejection 1 of 3" in decisions[-1].reason  # the streak starts over after a restore


def test_gate_tolerance_is_inclusive():
    gate = gate_with(tolerance=0.05, auc_tolerance=0.0, min_examples=1, patience=1)
    assert judge(gate, 0.45, examples=5).publish
    assert not judge(gate, 0.4501, examples=5).publish


def test_gate_lets_too_little_evidence_through():
    assert judge(gate_with(min_examples=50), 9.0, examples=10).publish


def test_gate_refuses_a_candidate_that_only_hedges():
    """Better log-loss on a partly mislabelled window, but a worse ranking: refused."""
    gate = gate_with(tolerance=0.01, auc_tolerance=0.02, patience=5)
    assert not judge(gate, 0.60, 0.70, aucs=(0.70, 0.90, 0.90)).publish
    assert judge(gate, 0.60, 0.70, aucs=(0.89, 0.90, 0.90)).publish
    assert judge(gate, 0.60, 0.70, aucs=(None, 0.90, 0.90)).publish  # one class only: loss decides


def test_gate_is_not_decided_by_a_few_mislabelled_examples():
    """A confident correct model pays a lot on a few wrong labels; the trimmed comparison looks
    at what the bulk of the window says, in both directions."""
    gate = gate_with(tolerance=0.01, trim=0.1, patience=10)
    correct = Score(np.r_[np.full(92, 0.02), np.full(8, 6.0)])  # 8 mislabelled examples
    fitted_to_them = Score(np.r_[np.full(92, 0.30), np.full(8, 0.2)])
    assert fitted_to_them.loss < correct.loss  # the plain mean would publish it
    assert not gate.judge(fitted_to_them, correct, correct).publish
    # And a few examples the candidate gets badly wrong do not block a broad improvement.
    improved = Score(np.r_[np.full(92, 0.01), np.full(8, 8.0)])
    assert gate.judge(improved, correct, correct).publish


def test_gate_tolerance_is_a_budget_not_a_staircase():
    """Steps each within tolerance of the published version stop once the reference is a
    tolerance away; a version at least as good as the reference becomes the new reference."""
    gate = gate_with(patience=10)
    reference, published, outcomes = 0.40, 0.40, []
    for candidate in (0.415, 0.43, 0.419, 0.39, 0.405):
        decision = judge(gate, candidate, published, reference)
        outcomes.append(decision.publish)
        if decision.publish:
            published = candidate
            reference = candidate if decision.new_reference else reference
    assert outcomes == [True, False, True, True, True]
    assert reference == 0.39 and published == 0.405


def test_page_hinkley_flags_a_rise_and_not_stationary_noise():
    rng = np.random.default_rng(3)
    detector = PageHinkley(threshold=20.0, delta=0.05, min_examples=30)
    stationary = rng.exponential(0.3, size=3000)  # log-loss-like: positive, skewed
    assert not any(detector.update(float(x)).drift for x in stationary)
    shifted = rng.exponential(1.3, size=200)
    alarms = [i for i, x in enumerate(shifted) if detector.update(float(x)).drift]
    assert alarms and alarms[0] < 60, alarms


def test_page_hinkley_ignores_a_fall_in_loss():
    detector = PageHinkley(threshold=5.0, delta=0.0, min_examples=5)
    values = [1.0] * 100 + [0.1] * 200
    assert not any(detector.update(v).drift for v in values)


def test_schedule_warms_up_holds_and_rewarms():
    schedule = StreamSchedule(warmup_steps=4, rewarm_factor=2.0, rewarm_steps=10)
    assert [schedule(s) for s in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert schedule(10_000) == 1.0  # constant forever: a stream never ends
    schedule.rewarm(at_step=100)
    assert schedule(99) == 1.0
    assert schedule(100) == 2.0
    assert schedule(105) == pytest.approx(1.5)
    assert schedule(110) == 1.0


def test_learner_rewarm_raises_the_rate_of_the_next_step():
    model = torch.nn.Linear(3, 1)
    learner = OnlineLearner(model, torch.device("cpu"), LearnerConfig(0.1, rewarm_factor=3.0, rewarm_steps=5))
    assert learner.learning_rate == pytest.approx(0.1)
    learner.rewarm()
    assert learner.learning_rate == pytest.approx(0.3)


def test_a_rewarm_speeds_up_the_encoder_but_leaves_the_head_at_its_rate():
    model = torch.nn.Sequential()
    model.add_module("encoder", torch.nn.Linear(3, 3))
    model.add_module("classifier", torch.nn.Linear(3, 1))
    config = LearnerConfig(0.1, head_learning_rate=1.0, rewarm_factor=3.0, rewarm_steps=5)
    learner = OnlineLearner(model, torch.device("cpu"), config)
    learner.rewarm()
    rates = {group["name"]: group["lr"] for group in learner.optimizer.param_groups}
    assert rates == {"body": pytest.approx(0.3), "head": pytest.approx(1.0)}
    for _ in range(5):  # the re-warm's steps, without rows: only the schedule moves
        learner.idle_step()
    rates = {group["name"]: group["lr"] for group in learner.optimizer.param_groups}
    assert rates == {"body": pytest.approx(0.1), "head": pytest.approx(1.0)}


def test_l2sp_pulls_weights_back_towards_the_anchor():
    layer = torch.nn.Linear(4, 1)
    penalty = L2SPPenalty(layer, weight=1.0)
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    loss = penalty()
    loss.backward()
    # The gradient points away from the anchor, so a descent step moves back towards it.
    assert torch.allclose(layer.weight.grad, layer.weight.detach() - start)
    assert float(loss.detach()) == pytest.approx(0.5 * 4)
