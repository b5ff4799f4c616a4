"""Every calibrator keeps each class's ranking, so the AP of the probabilities a run writes
is the AP of its logits, read back from valid_predictions.csv; plain isotonic regression's
ties would lower it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from cxrlt.calibration.calibrators import TemperatureScaling
from cxrlt.calibration.held_out import fit_held_out
from cxrlt.evaluation.metrics import evaluate
from cxrlt.outputs.run_dir import PREDICTIONS, RunDir
from cxrlt.registry import resolve
from cxrlt.testing import check_calibrator_object

NAMES = ["temp-scale", "temp-scale-per-class", "platt", "isotonic"]
CLASSES = ["A", "B", "C", "D"]


def validation(seed: int = 0):
    """float32 logits as a run has them, labels, and two halves of 400 images."""
    rng = np.random.default_rng(seed)
    true = rng.normal([0.0, -1.0, -2.0, -3.0], 1.5, (800, len(CLASSES)))
    targets = (rng.random(true.shape) < expit(true)).astype(float)
    return (3 * true).astype(np.float32), targets, rng.permutation(800) % 2


def ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class AP as a run reports it, ranking ``scores``."""
    probs = np.zeros(scores.shape)  # only F1 and ECE read them
    return evaluate(probs, targets, CLASSES, scores=scores).per_class["AP"].to_numpy()


def written(run_dir: RunDir, logits, targets, probs, calibrated) -> np.ndarray:
    """Write valid_predictions.csv as a run does and read its calibrated columns back."""
    ids = [f"img{i}" for i in range(len(logits))]
    run_dir.write_predictions(ids, CLASSES, targets, logits, probs, calibrated=calibrated)
    frame = pd.read_csv(run_dir.file(PREDICTIONS))
    return frame[[f"calibrated:{c}" for c in CLASSES]].to_numpy()


@pytest.mark.parametrize("name", NAMES)
def test_the_written_calibrated_column_has_the_ap_of_the_logits(tmp_path, name):
    logits, targets, halves = validation()
    fit = fit_held_out(
        logits,
        targets,
        halves,
        activation=expit,
        calibrator=resolve("calibrators", name),
        thresholds=resolve("thresholds", "fixed"),
        train_prevalence=targets.mean(axis=0),
    )
    held_out = written(RunDir(tmp_path / "held-out"), logits, targets, expit(logits), fit.probs)
    np.testing.assert_array_equal(held_out, fit.probs)  # the CSV holds the float64 exactly
    for half in (0, 1):  # each half's images are mapped by one calibrator, the other half's
        rows = halves == half
        np.testing.assert_array_equal(
            ap(held_out[rows], targets[rows]), ap(logits[rows], targets[rows])
        )
    kept = fit.calibrator.transform(logits)  # what new images get
    kept_written = written(RunDir(tmp_path / "kept"), logits, targets, expit(logits), kept)
    np.testing.assert_array_equal(ap(kept_written, targets), ap(logits, targets))


def test_plain_isotonic_ties_new_images_and_loses_ap_on_the_same_data():
    """The case the tie-break is for: scikit-learn's isotonic fit on one half, applied to the
    other, ties images in its flat steps and lowers every class's AP here."""
    logits, targets, halves = validation()
    for half in (0, 1):
        fitted_on, scored = halves != half, halves == half
        plain = np.column_stack(
            [
                IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                .fit(logits[fitted_on, c], targets[fitted_on, c])
                .predict(logits[scored, c])
                for c in range(len(CLASSES))
            ]
        )
        assert len(np.unique(plain)) < len(np.unique(logits[scored])) / 4
        assert (ap(plain, targets[scored]) < ap(logits[scored], targets[scored])).all()


class _Backwards(TemperatureScaling):
    """Calibrated, but ranking every class backwards."""

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        return super()._transform(-logits)


def test_the_conformance_kit_refuses_a_calibrator_that_changes_the_ranking():
    def reload(state):
        return _Backwards().load_state(state, fallback=expit)

    with pytest.raises(AssertionError, match="strictly increasing in each class's logit"):
        check_calibrator_object(_Backwards(), reload)
