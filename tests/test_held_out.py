"""Held-out calibration: each validation half is scored by what the other half fitted."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from cxrlt.calibration.held_out import fit_held_out, patient_folds
from cxrlt.errors import CxrltError
from cxrlt.registry import resolve


@pytest.fixture
def validation():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2, (400, 3))
    targets = (rng.random(true.shape) < expit(true)).astype(float)
    patients = np.repeat(np.arange(200), 2)  # two images per patient
    return true * 4, targets, patients  # logits four times too confident


def test_folds_keep_each_patient_on_one_side(validation):
    _, _, patients = validation
    folds = patient_folds(patients, seed=3)
    assert set(folds) == {0, 1}
    for patient in np.unique(patients):
        assert len(set(folds[patients == patient])) == 1
    assert np.array_equal(folds, patient_folds(patients, seed=3))


def test_each_half_is_calibrated_by_the_other_and_the_kept_one_by_all(validation):
    logits, targets, patients = validation
    fit = fit_held_out(
        logits,
        targets,
        patients,
        activation=expit,
        calibrator=resolve("calibrators", "temp-scale"),
        thresholds=resolve("thresholds", "f1-per-class:min_positives=1"),
        train_prevalence=targets.mean(axis=0),
    )
    for fold in (0, 1):
        fitted_on, scored = fit.folds != fold, fit.folds == fold
        other = (
            resolve("calibrators", "temp-scale").build().fit(logits[fitted_on], targets[fitted_on])
        )
        assert np.allclose(fit.probs[scored], other.transform(logits[scored]))
        cuts = resolve("thresholds", "f1-per-class:min_positives=1").build()
        expected = cuts.fit(other.transform(logits[fitted_on]), targets[fitted_on])
        assert np.allclose(fit.thresholds[scored], expected)
    whole = resolve("calibrators", "temp-scale").build().fit(logits, targets)
    assert np.allclose(fit.calibrator.transform(logits), whole.transform(logits))
    assert fit.calibrator.state()["temperature"] == pytest.approx(4, rel=0.2)


def test_without_a_calibrator_the_loss_activation_gives_the_probabilities(validation):
    logits, targets, patients = validation
    fit = fit_held_out(
        logits,
        targets,
        patients,
        activation=expit,
        calibrator=None,
        thresholds=resolve("thresholds", "fixed"),
        train_prevalence=targets.mean(axis=0),
    )
    assert fit.calibrator is None
    assert np.allclose(fit.probs, expit(logits)) and (fit.thresholds == 0.5).all()


def test_a_single_validation_patient_is_refused(validation):
    logits, targets, _ = validation
    with pytest.raises(CxrltError, match="single patient"):
        fit_held_out(
            logits,
            targets,
            np.zeros(len(logits)),
            activation=expit,
            calibrator=None,
            thresholds=resolve("thresholds", "fixed"),
            train_prevalence=targets.mean(axis=0),
        )
