"""Calibrators and thresholds fitted on held-out data, never on the images they are scored on.

The validation split is the only labelled data a run has not trained on, and the metrics are
reported on it, so fitting a calibrator or thresholds on it and scoring the same images would
flatter ECE and mF1. The split is therefore cut in two halves, grouped by patient and
stratified by label (:func:`cxrlt.data.split.validation_halves`, the same halves the epoch is
chosen on), and each half is scored with the calibrator and thresholds fitted on the other
(cross-fitting). Each half may have its own model (chosen on the other half): its calibrator
is fitted on that model's logits of the other half. What a run keeps for new images (the
test set) is fitted on the whole validation split, with the kept model's logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cxrlt.calibration.calibrators import Calibrator
from cxrlt.calibration.thresholds import ThresholdPolicy
from cxrlt.data.split import HALVES
from cxrlt.errors import CxrltError
from cxrlt.registry import Resolved


@dataclass(frozen=True)
class HeldOutFit:
    """Per validation image: probabilities and thresholds fitted without it; and the
    calibrator and threshold policy fitted on every validation image, for prediction."""

    probs: np.ndarray  # (N, C)
    thresholds: np.ndarray  # (N, C): each image's thresholds, from the other half
    halves: np.ndarray  # (N,) the half each image belongs to
    calibrator: Calibrator | None
    threshold_policy: ThresholdPolicy


def fit_held_out(
    logits: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray,
    halves: np.ndarray,
    *,
    activation: Callable[[np.ndarray], np.ndarray],
    calibrator: Resolved | None,
    thresholds: Resolved,
    train_prevalence: np.ndarray,
    kept_logits: np.ndarray | None = None,
) -> HeldOutFit:
    """Cross-fit ``calibrator`` (None: the loss's ``activation``) and ``thresholds`` over the
    two ``halves`` (0/1 per image). ``activation`` (the loss's, numpy logits to float64
    probabilities) also serves the classes the calibrator cannot fit.

    ``logits`` is one (N, C) matrix, or one per half: the logits, over every validation image,
    of the model that reports that half. ``kept_logits`` (default: the one matrix) are the kept
    model's, on which what the run keeps for new images is fitted.
    """
    per_half = [logits] * HALVES if isinstance(logits, np.ndarray) else list(logits)
    kept = logits if kept_logits is None else kept_logits
    halves = np.asarray(halves)

    def fit(
        scores: np.ndarray, rows: np.ndarray
    ) -> tuple[Calibrator | None, ThresholdPolicy, Callable]:
        model = (
            calibrator.build().fit(scores[rows], targets[rows], fallback=activation)
            if calibrator
            else None
        )
        to_probs = model.transform if model else activation
        policy = thresholds.build()
        policy.fit(to_probs(scores[rows]), targets[rows], train_prevalence=train_prevalence)
        return model, policy, to_probs

    if len(np.unique(halves)) < HALVES:
        raise CxrltError(
            "Calibration and thresholds are fitted on one half of the validation patients and "
            "scored on the other, but one half is empty: use a larger --valid-frac."
        )
    probs = np.zeros(per_half[0].shape)
    cuts = np.zeros(per_half[0].shape)
    for half, scores in enumerate(per_half):
        scored = halves == half
        _, policy, to_probs = fit(scores, ~scored)
        probs[scored] = to_probs(scores[scored])
        cuts[scored] = policy.thresholds
    final_calibrator, final_policy, _ = fit(np.asarray(kept), np.ones(len(halves), dtype=bool))
    return HeldOutFit(probs, cuts, halves, final_calibrator, final_policy)
