"""Calibrators and thresholds fitted on held-out data, never on the images they are scored on.

The validation split is the only labelled data a run has not trained on, and the metrics are
reported on it, so fitting a calibrator or thresholds on it and scoring the same images would
flatter ECE and mF1. The split is therefore cut in two halves by patient, and each half is
scored with the calibrator and thresholds fitted on the other (cross-fitting). What a run
keeps for new images (the test set) is fitted on the whole validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cxrlt.calibration.calibrators import Calibrator
from cxrlt.calibration.thresholds import ThresholdPolicy
from cxrlt.errors import CxrltError
from cxrlt.registry import Resolved

FOLDS = 2


@dataclass(frozen=True)
class HeldOutFit:
    """Per validation image: probabilities and thresholds fitted without it; and the
    calibrator and threshold policy fitted on every validation image, for prediction."""

    probs: np.ndarray  # (N, C)
    thresholds: np.ndarray  # (N, C): each image's thresholds, from the other half
    folds: np.ndarray  # (N,) the half each image belongs to
    calibrator: Calibrator | None
    threshold_policy: ThresholdPolicy


def patient_folds(patients: np.ndarray, seed: int = 0) -> np.ndarray:
    """Assign whole patients to ``FOLDS`` halves at random (same seed, same halves)."""
    unique, index = np.unique(np.asarray(patients), return_inverse=True)
    side = np.random.default_rng([seed, FOLDS]).permutation(len(unique)) % FOLDS
    return side[index]


def fit_held_out(
    logits: np.ndarray,
    targets: np.ndarray,
    patients: np.ndarray,
    *,
    activation: Callable[[np.ndarray], np.ndarray],
    calibrator: Resolved | None,
    thresholds: Resolved,
    train_prevalence: np.ndarray,
    seed: int = 0,
) -> HeldOutFit:
    """Cross-fit ``calibrator`` (None: the loss's ``activation``) and ``thresholds``."""

    def fit(rows: np.ndarray) -> tuple[Calibrator | None, ThresholdPolicy, Callable]:
        model = calibrator.build().fit(logits[rows], targets[rows]) if calibrator else None
        to_probs = model.transform if model else activation
        policy = thresholds.build()
        policy.fit(to_probs(logits[rows]), targets[rows], train_prevalence=train_prevalence)
        return model, policy, to_probs

    folds = patient_folds(patients, seed)
    if len(np.unique(folds)) < FOLDS:
        raise CxrltError(
            "Calibration and thresholds are fitted on one half of the validation patients and "
            "scored on the other, but the validation split has a single patient: use a larger "
            "--valid-frac, or leave out --calibrator and --thresholds."
        )
    probs = np.zeros(logits.shape)
    cuts = np.zeros(logits.shape)
    for fold in range(FOLDS):
        scored = folds == fold
        _, policy, to_probs = fit(~scored)
        probs[scored] = to_probs(logits[scored])
        cuts[scored] = policy.thresholds
    final_calibrator, final_policy, _ = fit(np.ones(len(logits), dtype=bool))
    return HeldOutFit(probs, cuts, folds, final_calibrator, final_policy)
