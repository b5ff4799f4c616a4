"""Classes a calibrator cannot fit keep the activation of the loss the run trained with
(LDAM's sigmoid(s z), the Distribution-Balanced loss's shifted sigmoid), never a plain
sigmoid: fitted, cross-fitted, saved and rebuilt."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit, logit
from typer.testing import CliRunner

from cxrlt.calibration import calibrator_from_state
from cxrlt.calibration.calibrators import LossActivation
from cxrlt.calibration.held_out import fit_held_out
from cxrlt.evaluation.metrics import expected_calibration_error as ece
from cxrlt.registry import resolve

COUNTS = [400, 120, 40, 6, 2, 1]  # training positives per class
N_TRAIN = 1000
OFFSETS = [-0.5, -1.5, -2.5, -4.0, -6.0, -7.0]  # the activation's logit, per class
RAW_PER_UNIT = {"ldam": 1 / 30, "db": 1.0}  # raw logit per unit of the activation's logit
PER_CLASS = ["temp-scale-per-class", "platt", "isotonic"]
N = 2_000  # images per half


def loss_activation(loss: str):
    built = resolve("losses", loss).build(class_counts=COUNTS, n_items=N_TRAIN)
    return LossActivation(built)


def halves(loss: str, seed: int = 0):
    """Logits and labels for a fitting half and a scoring half. The loss's activation is
    twice too confident; classes 4 and 5 (rare) have no positive in the fitting half."""
    rng = np.random.default_rng(seed)
    activation = loss_activation(loss)
    z = rng.normal(OFFSETS, 1.5, (2 * N, len(OFFSETS))) * RAW_PER_UNIT[loss]
    truth = expit(logit(activation(z)) / 2)
    y = (rng.random(z.shape) < truth).astype(float)
    y[:N, 4:] = 0
    return z[:N], y[:N], z[N:], y[N:], activation


@pytest.mark.parametrize("loss", ["ldam", "db"])
@pytest.mark.parametrize("name", PER_CLASS)
def test_unfit_classes_take_the_loss_activation_and_ece_does_not_rise(loss, name):
    z_fit, y_fit, z_new, y_new, activation = halves(loss)
    calibrator = resolve("calibrators", name).build().fit(z_fit, y_fit, fallback=activation)
    assert calibrator.state()["fitted"][4:] == [False, False]
    probs = calibrator.transform(z_new)
    np.testing.assert_array_equal(probs[:, 4:], activation(z_new)[:, 4:])
    assert ece(probs, y_new) <= ece(activation(z_new), y_new)
    if loss == "ldam":  # the plain sigmoid of LDAM's raw logits sits near 0.45
        plain = resolve("calibrators", name).build().fit(z_fit, y_fit, fallback=expit)
        assert ece(plain.transform(z_new), y_new) > 3 * ece(probs, y_new)


@pytest.mark.parametrize("loss", ["ldam", "db"])
def test_one_temperature_without_a_pooled_positive_is_the_loss_activation(loss):
    z_fit, _, z_new, y_new, activation = halves(loss)
    calibrator = resolve("calibrators", "temp-scale").build()
    calibrator.fit(z_fit, np.zeros_like(z_fit), fallback=activation)
    np.testing.assert_array_equal(calibrator.transform(z_new), activation(z_new))
    assert ece(calibrator.transform(z_new), y_new) == ece(activation(z_new), y_new)


@pytest.mark.parametrize("name", PER_CLASS)
def test_the_rebuilt_calibrator_takes_the_fallback_it_is_given(name):
    z_fit, y_fit, z_new, _, activation = halves("ldam")
    resolved = resolve("calibrators", name)
    fitted = resolved.build().fit(z_fit, y_fit, fallback=activation)
    state = json.loads(json.dumps(fitted.state()))  # as calibration.json holds it
    rebuilt = calibrator_from_state(str(resolved.spec), state, fallback=activation)
    np.testing.assert_array_equal(rebuilt.transform(z_new), fitted.transform(z_new))


@pytest.mark.parametrize("name", PER_CLASS)
def test_cross_fitting_passes_the_loss_activation_on(name):
    z_fit, y_fit, z_new, y_new, activation = halves("db")
    z, y = np.r_[z_fit, z_new], np.r_[y_fit, y_new]
    y[:, 5] = 0  # no positive at all: neither half nor the kept calibrator can fit it
    fit = fit_held_out(
        z,
        y,
        np.repeat([0, 1], N),
        activation=activation,
        calibrator=resolve("calibrators", name),
        thresholds=resolve("thresholds", "fixed"),
        train_prevalence=np.asarray(COUNTS) / N_TRAIN,
    )
    np.testing.assert_array_equal(fit.probs[:, 5], activation(z)[:, 5])
    np.testing.assert_array_equal(fit.calibrator.transform(z)[:, 5], activation(z)[:, 5])


@pytest.mark.slow
def test_a_run_directory_predicts_unfit_classes_with_its_loss_activation(tmp_path):
    """`cxrlt run --loss ldam --post temp-scale-per-class`, one class then marked unfitted in
    calibration.json: load_run gives it sigmoid(30 z), LDAM's activation, in float64."""
    from cxrlt.cli import app
    from cxrlt.prediction import load_run

    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "run", "--dataset", "synthetic:n_images=160,size=32", "--size", "32",
            "--epochs", "1", "--bs", "32", "--loss", "ldam", "--post", "temp-scale-per-class",
            "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "calibration.json").read_text())
    state = saved["calibrator"]["state"]
    state["fitted"][3], state["temperature"][3] = False, None
    (out / "calibration.json").write_text(json.dumps(saved))
    run = load_run(out)
    z = np.random.default_rng(0).normal(0, 0.5, (64, len(run.classes)))
    probs = run.probabilities(z)
    np.testing.assert_allclose(probs[:, 3], expit(30 * z[:, 3]), rtol=1e-15)  # torch's sigmoid
    fitted = np.arange(len(run.classes)) != 3
    temperatures = np.asarray(state["temperature"], dtype=float)[fitted]
    np.testing.assert_array_equal(probs[:, fitted], expit(z[:, fitted] / temperatures))
