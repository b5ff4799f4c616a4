"""Calibrators: each against an independent fit, AP kept while ECE drops, state round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from cxrlt.calibration import Calibrator, calibrator_from_state
from cxrlt.calibration.calibrators import fit_temperature
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import expected_calibration_error as ece
from cxrlt.registry import registry, resolve

NAMES = ["temp-scale", "temp-scale-per-class", "platt", "isotonic"]


def nll(probs: np.ndarray, targets: np.ndarray) -> float:
    probs = np.clip(probs, 1e-15, 1 - 1e-15)
    return float(-np.mean(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)))


def calibrated_data(n: int, offsets, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True logits (one column per offset) and labels drawn from their sigmoid."""
    rng = np.random.default_rng(seed)
    z_true = rng.normal(size=(n, len(offsets))) * 1.5 + np.asarray(offsets)
    return z_true, (rng.random(z_true.shape) < expit(z_true)).astype(float)


def build(spec: str) -> Calibrator:
    return resolve("calibrators", spec).build()


def test_builtins_are_registered():
    entries = registry("calibrators").entries
    assert [e.name for e in entries] == NAMES
    assert {e.plugin for e in entries} == {"cxrlt.builtins.calibrators"}


def test_temp_scale_recovers_a_known_temperature():
    z_true, y = calibrated_data(20_000, [-1.0, 0.0, 1.0])
    logits = z_true * 2.5
    calibrator = build("temp-scale").fit(logits, y)
    temperature = calibrator.state()["temperature"]
    assert temperature == pytest.approx(2.5, rel=0.05)
    # LBFGS reaches the optimum an independent 1-D minimiser finds
    best = minimize_scalar(
        lambda t: nll(expit(logits / t), y),
        bounds=(0.5, 10),
        method="bounded",
        options={"xatol": 1e-8},
    )
    assert temperature == pytest.approx(best.x, rel=1e-4)
    np.testing.assert_allclose(calibrator.transform(logits), expit(logits / temperature))


def test_temp_scale_per_class_recovers_each_temperature_and_skips_degenerate_classes():
    z_true, y = calibrated_data(20_000, [0.0, 0.5, -0.5, 0.0])
    y[:, 3] = 0  # no positives: no finite optimum
    truth = np.array([0.5, 2.0, 4.0, 3.0])
    temperatures = build("temp-scale-per-class").fit(z_true * truth, y).state()["temperature"]
    np.testing.assert_allclose(temperatures[:3], truth[:3], rtol=0.06)
    assert temperatures[3] == 1.0


def test_fit_temperature_keeps_the_start_when_the_logits_say_nothing():
    assert fit_temperature(np.zeros(10), np.r_[np.ones(5), np.zeros(5)]) == pytest.approx(1.5)


def test_platt_equals_scikit_learn_and_the_unregularised_optimum():
    z_true, y = calibrated_data(3_000, [-2.0, 0.5], seed=1)
    logits = 3 * z_true - 1
    probs = build("platt").fit(logits, y).transform(logits)
    for c in range(2):
        model = LogisticRegression(C=1.0).fit(logits[:, [c]], y[:, c])
        np.testing.assert_allclose(probs[:, c], model.predict_proba(logits[:, [c]])[:, 1], 1e-6)

    # with almost no penalty: the maximum-likelihood (a, b), found by scipy from scratch
    state = build("platt:C=1e8").fit(logits, y).state()
    for c in range(2):
        z, t = logits[:, c], y[:, c]
        best = minimize(lambda ab, z=z, t=t: nll(expit(ab[0] * z + ab[1]), t), [1.0, 0.0])
        assert [state["slope"][c], state["intercept"][c]] == pytest.approx(best.x, abs=1e-3)
        assert best.x[0] == pytest.approx(1 / 3, rel=0.1)  # undoes the 3x


def test_isotonic_equals_scikit_learn_inside_and_outside_the_fitted_range():
    z_true, y = calibrated_data(2_000, [0.0, -1.0], seed=2)
    calibrator = build("isotonic").fit(z_true, y)
    new = np.linspace(-12, 12, 101)[:, None].repeat(2, axis=1)
    probs = calibrator.transform(new)
    for c in range(2):
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(z_true[:, c], y[:, c])
        np.testing.assert_allclose(probs[:, c], model.predict(new[:, c]), atol=1e-12)


@pytest.mark.parametrize("name", NAMES[1:])
def test_degenerate_classes_keep_the_identity(name):
    z_true, y = calibrated_data(500, [0.0, 0.0, 0.0], seed=3)
    y[:, 1], y[:, 2] = 0, 1  # no positives; no negatives
    probs = build(name).fit(z_true * 4, y).transform(z_true * 4)
    np.testing.assert_allclose(probs[:, 1:], expit(z_true[:, 1:] * 4))


@pytest.mark.parametrize("name", ["temp-scale", "temp-scale-per-class", "platt"])
def test_strictly_monotone_calibrators_keep_ap_and_lower_ece(name):
    z_true, y = calibrated_data(4_000, [-2.5, -1.0, 0.5], seed=4)
    logits = z_true * 4  # over-confident
    probs = build(name).fit(logits, y).transform(logits)
    for c in range(3):
        assert average_precision_score(y[:, c], probs[:, c]) == pytest.approx(
            average_precision_score(y[:, c], logits[:, c]), abs=1e-12
        )
    assert ece(probs, y) < 0.3 * ece(expit(logits), y)


def test_isotonic_does_not_raise_ece_on_its_fitting_data():
    """Monotone but not strictly: its flat steps tie images, which may change AP, so only
    the calibration is checked."""
    z_true, y = calibrated_data(4_000, [-2.5, -1.0, 0.5], seed=5)
    logits = z_true * 4
    probs = build("isotonic").fit(logits, y).transform(logits)
    assert ece(probs, y) <= ece(expit(logits), y)
    assert ece(probs, y) < 0.02


@pytest.mark.parametrize("name", [*NAMES, "platt:C=0.5"])
def test_state_round_trips_through_json(name):
    z_true, y = calibrated_data(600, [-1.5, 0.0], seed=6)
    y[:, 1] = 0
    resolved = resolve("calibrators", name)
    fitted = resolved.build().fit(z_true * 2, y)
    saved = json.loads(json.dumps({"spec": str(resolved.spec), "state": fitted.state()}))
    rebuilt = calibrator_from_state(saved["spec"], saved["state"])
    new = np.random.default_rng(0).normal(size=(50, 2)) * 5
    np.testing.assert_array_equal(rebuilt.transform(new), fitted.transform(new))
    assert rebuilt.transform(new).dtype == np.float64


def test_mistakes_are_clear_errors():
    with pytest.raises(CxrltError, match="not fitted"):
        build("platt").transform(np.zeros((2, 2)))
    fitted = build("temp-scale-per-class").fit(np.zeros((4, 2)), np.eye(4)[:, :2])
    with pytest.raises(CxrltError, match="fitted on 2 classes"):
        fitted.transform(np.zeros((4, 3)))
    with pytest.raises(CxrltError, match="0 or 1"):
        build("platt").fit(np.zeros((2, 1)), [[0.5], [1]])
    with pytest.raises(CxrltError, match="NaN"):
        build("isotonic").fit([[np.nan]], [[1]])
    with pytest.raises(CxrltError, match="does not belong"):
        calibrator_from_state("platt", fitted.state())
    with pytest.raises(CxrltError, match="platt:C=0.*C must be > 0"):
        build("platt:C=0")
    with pytest.raises(CxrltError, match="Unknown calibrator"):
        calibrator_from_state("plat", {})
