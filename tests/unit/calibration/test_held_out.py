"""Held-out calibration: each validation half is scored by what the other half fitted."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from cxrlt.calibration.held_out import fit_held_out
from cxrlt.data.split import validation_halves
from cxrlt.errors import CxrltError
from cxrlt.registry import resolve


@pytest.fixture
def validation():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2, (400, 3))
    targets = (rng.random(true.shape) < expit(true)).astype(float)
    halves = validation_halves(np.repeat(np.arange(200), 2), targets)  # two images a patient
    return true * 4, targets, halves  # logits four times too confident


def test_each_half_is_calibrated_by_the_other_and_the_kept_one_by_all(validation):
    logits, targets, halves = validation
    fit = fit_held_out(
        logits,
        targets,
        halves,
        activation=expit,
        calibrator=resolve("calibrators", "temp-scale"),
        thresholds=resolve("thresholds", "f1-per-class:min_positives=1"),
        train_prevalence=targets.mean(axis=0),
    )
    for fold in (0, 1):
        fitted_on, scored = fit.halves != fold, fit.halves == fold
        other = (
            resolve("calibrators", "temp-scale")
            .build()
            .fit(logits[fitted_on], targets[fitted_on], fallback=expit)
        )
        assert np.allclose(fit.probs[scored], other.transform(logits[scored]))
        cuts = resolve("thresholds", "f1-per-class:min_positives=1").build()
        expected = cuts.fit(other.transform(logits[fitted_on]), targets[fitted_on])
        assert np.allclose(fit.thresholds[scored], expected)
    whole = resolve("calibrators", "temp-scale").build().fit(logits, targets, fallback=expit)
    assert np.allclose(fit.calibrator.transform(logits), whole.transform(logits))
    assert fit.calibrator.state()["temperature"] == pytest.approx(4, rel=0.2)


def test_without_a_calibrator_the_loss_activation_gives_the_probabilities(validation):
    logits, targets, halves = validation
    fit = fit_held_out(
        logits,
        targets,
        halves,
        activation=expit,
        calibrator=None,
        thresholds=resolve("thresholds", "fixed"),
        train_prevalence=targets.mean(axis=0),
    )
    assert fit.calibrator is None
    assert np.allclose(fit.probs, expit(logits)) and (fit.thresholds == 0.5).all()


def test_an_empty_half_is_refused(validation):
    logits, targets, _ = validation
    with pytest.raises(CxrltError, match="one half is empty"):
        fit_held_out(
            logits,
            targets,
            np.zeros(len(logits)),
            activation=expit,
            calibrator=None,
            thresholds=resolve("thresholds", "fixed"),
            train_prevalence=targets.mean(axis=0),
        )


def test_each_half_is_calibrated_on_its_own_models_logits_of_the_other_half(validation):
    """With a model per half (chosen on the other half), a half's calibrator is fitted on
    that model's logits of the other half, and the kept one on the kept model's."""
    logits, targets, halves = validation
    models = [logits, logits / 2]  # the model reporting half 1 is half as confident
    fit = fit_held_out(
        models,
        targets,
        halves,
        activation=expit,
        calibrator=resolve("calibrators", "temp-scale"),
        thresholds=resolve("thresholds", "fixed"),
        train_prevalence=targets.mean(axis=0),
        kept_logits=logits * 2,
    )
    for half, model in enumerate(models):
        other = halves != half
        expected = resolve("calibrators", "temp-scale").build()
        expected.fit(model[other], targets[other], fallback=expit)
        assert np.allclose(fit.probs[halves == half], expected.transform(model[halves == half]))
    assert fit.calibrator.state()["temperature"] == pytest.approx(8, rel=0.2)
