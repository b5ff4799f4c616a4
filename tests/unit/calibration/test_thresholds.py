"""Threshold policies: F1 optima against brute-force sweeps, fallbacks, rates, state, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score

from cxrlt.calibration import ThresholdPolicy, threshold_policy_from_state
from cxrlt.errors import CxrltError
from cxrlt.registry import registry, resolve

NAMES = ["fixed", "f1-per-class", "f1-global", "prevalence"]


def data(n: int = 300, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy probabilities, higher on average for positives, and their labels."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, n_classes)) < np.linspace(0.1, 0.5, n_classes)).astype(float)
    probs = np.clip(0.3 + 0.3 * targets + rng.normal(scale=0.2, size=targets.shape), 0, 1)
    return probs.round(3), targets  # rounding makes ties


def build(spec: str) -> ThresholdPolicy:
    return resolve("thresholds", spec).build()


def f1(targets: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """F1 of ``probs >= threshold``, counted directly."""
    predicted, actual = probs >= threshold, targets == 1
    true_pos = (predicted & actual).sum()
    return 2 * true_pos / (predicted.sum() + actual.sum()) if true_pos else 0.0


def mean_f1(targets: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    scored = targets.any(axis=0)
    return np.mean([f1(targets[:, c], probs[:, c], threshold) for c in np.flatnonzero(scored)])


def test_builtins_are_registered():
    entries = registry("thresholds").entries
    assert [e.name for e in entries] == NAMES
    assert {e.plugin for e in entries} == {"cxrlt.builtins.thresholds"}


def test_fixed_returns_its_threshold_for_every_class():
    probs, targets = data()
    np.testing.assert_array_equal(build("fixed").fit(probs, targets), [0.5] * 4)
    np.testing.assert_array_equal(build("fixed:threshold=0.2").fit(probs, targets), [0.2] * 4)


def test_f1_per_class_reaches_the_best_f1_of_a_sweep():
    probs, targets = data()
    thresholds = build("f1-per-class").fit(probs, targets)
    for c in range(4):
        sweep = np.r_[np.unique(probs[:, c]), np.linspace(0, 1, 201)]
        best = max(f1(targets[:, c], probs[:, c], t) for t in sweep)
        assert f1(targets[:, c], probs[:, c], thresholds[c]) == pytest.approx(best, abs=1e-12)
        assert thresholds[c] in probs[:, c]  # the lowest probability predicted positive
        assert f1_score(targets[:, c], probs[:, c] >= thresholds[c]) == pytest.approx(best)


def test_f1_global_maximises_the_mean_per_class_f1():
    probs, targets = data(seed=1)
    targets[:, 3] = 0  # no F1 defined: left out, as in mF1
    thresholds = build("f1-global").fit(probs, targets)
    assert len(set(thresholds)) == 1
    sweep = np.r_[np.unique(probs), np.linspace(0, 1, 201)]
    best = max(mean_f1(targets, probs, t) for t in sweep)
    assert mean_f1(targets, probs, thresholds[0]) == pytest.approx(best, abs=1e-12)


def test_rare_classes_take_the_global_threshold():
    probs, targets = data(seed=2)
    targets[:, 0] = 0
    targets[:4, 0] = 1  # 4 positives < min_positives=5
    targets[:, 1] = 0  # none
    global_threshold = build("f1-global").fit(probs, targets)[0]
    thresholds = build("f1-per-class").fit(probs, targets)
    assert thresholds[:2].tolist() == [global_threshold] * 2
    own = build("f1-per-class:min_positives=0").fit(probs, targets)
    assert own[0] != global_threshold and own[1] == global_threshold


def test_shrinkage_pulls_towards_the_global_threshold_by_n_over_n_plus_shrinkage():
    probs, targets = data(seed=3)
    global_threshold = build("f1-global").fit(probs, targets)[0]
    own = build("f1-per-class").fit(probs, targets)
    shrunk = build("f1-per-class:shrinkage=20").fit(probs, targets)
    weight = targets.sum(axis=0) / (targets.sum(axis=0) + 20)
    np.testing.assert_allclose(shrunk, weight * own + (1 - weight) * global_threshold)


def test_prevalence_matches_the_training_rate():
    rng = np.random.default_rng(4)
    probs, targets = rng.random((400, 4)), np.zeros((400, 4))
    prevalence = np.array([0.0, 0.013, 0.25, 1.0])
    thresholds = build("prevalence").fit(probs, targets, train_prevalence=prevalence)
    rates = (probs >= thresholds).mean(axis=0)
    np.testing.assert_allclose(rates, prevalence, atol=1 / (2 * 400))
    assert ((thresholds >= 0) & (thresholds <= 1)).all()


def test_prevalence_with_ties_takes_the_closest_rate():
    probs = np.array([[0.9], [0.5], [0.5], [0.5], [0.1]])
    threshold = build("prevalence").fit(probs, np.zeros((5, 1)), train_prevalence=[0.6])
    assert threshold.tolist() == [0.5]  # 4 of 5 predicted is closer to 3 than 1 of 5


@pytest.mark.parametrize("name", [*NAMES, "f1-per-class:min_positives=2,shrinkage=3.5"])
def test_state_round_trips_through_json(name):
    probs, targets = data(seed=5)
    resolved = resolve("thresholds", name)
    policy = resolved.build()
    fitted = policy.fit(probs, targets, train_prevalence=targets.mean(axis=0))
    saved = json.loads(json.dumps({"spec": str(resolved.spec), "state": policy.state()}))
    rebuilt = threshold_policy_from_state(saved["spec"], saved["state"])
    np.testing.assert_array_equal(rebuilt.thresholds, fitted)


@pytest.mark.parametrize(
    ("spec", "parameter"),
    [
        ("fixed:threshold=1.5", "threshold"),
        ("fixed:threshold=-0.1", "threshold"),
        ("f1-per-class:min_positives=-1", "min_positives"),
        ("f1-per-class:shrinkage=-2", "shrinkage"),
        ("fixed:threshold='high'", "threshold"),
    ],
)
def test_bad_parameters_name_the_parameter(spec, parameter):
    with pytest.raises(CxrltError, match=parameter):
        build(spec)


def test_mistakes_are_clear_errors():
    probs, targets = data()
    with pytest.raises(CxrltError, match="train_prevalence"):
        build("prevalence").fit(probs, targets)
    with pytest.raises(CxrltError, match="train_prevalence"):
        build("prevalence").fit(probs, targets, train_prevalence=[0.1, 0.2])
    with pytest.raises(CxrltError, match=r"\[0, 1\]"):
        build("fixed").fit(probs * 2, targets)
    with pytest.raises(CxrltError, match="no class has a positive"):
        build("f1-global").fit(probs, np.zeros_like(targets))
    with pytest.raises(CxrltError, match="not fitted"):
        build("fixed").state()
    with pytest.raises(CxrltError, match="does not belong"):
        threshold_policy_from_state("fixed", {"temperature": 1.0})
