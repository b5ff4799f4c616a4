"""Calibrators: each against an independent fit, AP kept while ECE drops, state round trips,
and classes they cannot fit left to the loss's activation."""

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
from cxrlt.calibration.calibrators import TIE_BREAK, fit_temperature
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import expected_calibration_error as ece
from cxrlt.registry import registry, resolve

NAMES = ["temp-scale", "temp-scale-per-class", "platt", "isotonic"]


def ldam_activation(logits: np.ndarray) -> np.ndarray:
    """A loss activation other than the plain sigmoid: LDAM's sigmoid(s z), s = 30."""
    return expit(30 * logits)


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


def fit(spec: str, logits: np.ndarray, targets: np.ndarray, fallback=expit) -> Calibrator:
    return build(spec).fit(logits, targets, fallback=fallback)


def test_builtins_are_registered():
    entries = registry("calibrators").entries
    assert [e.name for e in entries] == NAMES
    assert {e.plugin for e in entries} == {"cxrlt.builtins.calibrators"}


def test_temp_scale_recovers_a_known_temperature():
    z_true, y = calibrated_data(20_000, [-1.0, 0.0, 1.0])
    logits = z_true * 2.5
    calibrator = fit("temp-scale", logits, y)
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
    z_true, y = calibrated_data(20_000, [0.0, 0.5, -0.5, 0.0, 0.0])
    y[:, 3] = 0  # no positives: no finite optimum
    y[:, 4] = z_true[:, 4] > 0  # separated by the logits: the NLL falls towards T = 0
    truth = np.array([0.5, 2.0, 4.0, 3.0, 1.0])
    state = fit("temp-scale-per-class", z_true * truth, y).state()
    np.testing.assert_allclose(state["temperature"][:3], truth[:3], rtol=0.06)
    assert state["temperature"][3:] == [None, None]
    assert state["fitted"] == [True, True, True, False, False]


def test_fit_temperature_keeps_the_start_when_the_logits_say_nothing():
    assert fit_temperature(np.zeros(10), np.r_[np.ones(5), np.zeros(5)]) == pytest.approx(1.5)


def test_platt_equals_scikit_learn_and_the_unregularised_optimum():
    z_true, y = calibrated_data(3_000, [-2.0, 0.5], seed=1)
    logits = 3 * z_true - 1
    probs = fit("platt", logits, y).transform(logits)
    for c in range(2):
        model = LogisticRegression(C=1.0).fit(logits[:, [c]], y[:, c])
        np.testing.assert_allclose(probs[:, c], model.predict_proba(logits[:, [c]])[:, 1], 1e-6)

    # with almost no penalty: the maximum-likelihood (a, b), found by scipy from scratch
    state = fit("platt:C=1e8", logits, y).state()
    for c in range(2):
        z, t = logits[:, c], y[:, c]
        best = minimize(lambda ab, z=z, t=t: nll(expit(ab[0] * z + ab[1]), t), [1.0, 0.0])
        assert [state["slope"][c], state["intercept"][c]] == pytest.approx(best.x, abs=1e-3)
        assert best.x[0] == pytest.approx(1 / 3, rel=0.1)  # undoes the 3x


def test_isotonic_is_scikit_learn_plus_a_negligible_strictly_increasing_term():
    z_true, y = calibrated_data(2_000, [0.0, -1.0], seed=2)
    calibrator = fit("isotonic", z_true, y)
    new = np.linspace(-12, 12, 101)[:, None].repeat(2, axis=1)
    probs = calibrator.transform(new)
    for c in range(2):
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(z_true[:, c], y[:, c])
        plain = model.predict(new[:, c])
        np.testing.assert_allclose(probs[:, c], plain, rtol=0, atol=TIE_BREAK)
        assert (np.diff(plain) == 0).sum() > 50  # flat steps and clipped tails: ties
        assert (np.diff(probs[:, c]) > 0).all()  # none left
    assert ((probs > 0) & (probs < 1)).all()


def test_isotonic_stays_strictly_increasing_between_neighbouring_float32_logits():
    z_true, y = calibrated_data(2_000, [0.0], seed=7)
    calibrator = fit("isotonic", z_true * 8, y)
    grid = np.float32(np.r_[-300:300:0.37, -8:8:0.001])
    grid = grid[np.abs(grid) > 0.01]  # nearer 0, one float32 step is below float64's resolution
    neighbours = np.unique(np.r_[grid, np.nextafter(grid, np.float32(np.inf))])
    probs = calibrator.transform(neighbours.astype(np.float64)[:, None])[:, 0]
    assert (np.diff(probs) > 0).all()


def test_platt_leaves_a_class_ranked_backwards_to_the_loss_activation():
    z_true, y = calibrated_data(2_000, [0.0, 0.0], seed=8)
    logits = z_true * [1.0, -1.0] / 30  # LDAM-sized; class 1's logits rank it backwards
    calibrator = fit("platt", logits, y, fallback=ldam_activation)
    assert calibrator.state()["fitted"] == [True, False]
    probs = calibrator.transform(logits)
    np.testing.assert_array_equal(probs[:, 1], ldam_activation(logits)[:, 1])
    assert average_precision_score(y[:, 1], probs[:, 1]) == pytest.approx(
        average_precision_score(y[:, 1], logits[:, 1]), abs=1e-12
    )


@pytest.mark.parametrize("name", NAMES[1:])
def test_degenerate_classes_keep_the_fallback_activation(name):
    z_true, y = calibrated_data(500, [0.0, 0.0, 0.0], seed=3)
    y[:, 1], y[:, 2] = 0, 1  # no positives; no negatives
    calibrator = fit(name, z_true * 4, y, fallback=ldam_activation)
    probs = calibrator.transform(z_true * 4)
    np.testing.assert_array_equal(probs[:, 1:], ldam_activation(z_true * 4)[:, 1:])
    assert calibrator.state()["fitted"] == [True, False, False]


def test_one_temperature_without_a_pooled_positive_keeps_the_fallback_activation():
    logits = np.random.default_rng(9).normal(size=(50, 3))
    calibrator = fit("temp-scale", logits, np.zeros((50, 3)), fallback=ldam_activation)
    assert calibrator.state()["fitted"] == [False] * 3
    np.testing.assert_array_equal(calibrator.transform(logits), ldam_activation(logits))


@pytest.mark.parametrize("name", NAMES)
def test_every_calibrator_keeps_ap_and_lowers_ece(name):
    z_true, y = calibrated_data(4_000, [-2.5, -1.0, 0.5], seed=4)
    logits = z_true * 4  # over-confident
    probs = fit(name, logits, y).transform(logits)
    for c in range(3):
        assert average_precision_score(y[:, c], probs[:, c]) == pytest.approx(
            average_precision_score(y[:, c], logits[:, c]), abs=1e-12
        )
    assert ece(probs, y) < 0.3 * ece(expit(logits), y)


@pytest.mark.parametrize("name", [*NAMES, "platt:C=0.5"])
def test_state_round_trips_through_json(name):
    z_true, y = calibrated_data(600, [-1.5, 0.0], seed=6)
    y[:, 1] = 0
    resolved = resolve("calibrators", name)
    fitted = resolved.build().fit(z_true * 2, y, fallback=ldam_activation)
    saved = json.loads(json.dumps({"spec": str(resolved.spec), "state": fitted.state()}))
    rebuilt = calibrator_from_state(saved["spec"], saved["state"], fallback=ldam_activation)
    new = np.random.default_rng(0).normal(size=(50, 2)) * 5
    np.testing.assert_array_equal(rebuilt.transform(new), fitted.transform(new))
    assert rebuilt.transform(new).dtype == np.float64
    if name != "temp-scale":  # per class: the class without a positive takes the fallback
        plain = calibrator_from_state(saved["spec"], saved["state"], fallback=expit)
        np.testing.assert_array_equal(plain.transform(new)[:, 1], expit(new[:, 1]))
        np.testing.assert_array_equal(plain.transform(new)[:, 0], fitted.transform(new)[:, 0])


def test_mistakes_are_clear_errors():
    with pytest.raises(CxrltError, match="not fitted"):
        build("platt").transform(np.zeros((2, 2)))
    fitted = fit("temp-scale-per-class", np.zeros((4, 2)), np.eye(4)[:, :2])
    with pytest.raises(CxrltError, match="fitted on 2 classes"):
        fitted.transform(np.zeros((4, 3)))
    with pytest.raises(CxrltError, match="0 or 1"):
        fit("platt", np.zeros((2, 1)), [[0.5], [1]])
    with pytest.raises(CxrltError, match="NaN"):
        fit("isotonic", [[np.nan]], [[1]])
    with pytest.raises(CxrltError, match="does not belong"):
        calibrator_from_state("platt", fitted.state(), fallback=expit)
    with pytest.raises(CxrltError, match="platt:C=0.*C must be > 0"):
        build("platt:C=0")
    with pytest.raises(CxrltError, match="Unknown calibrator"):
        calibrator_from_state("plat", {}, fallback=expit)
