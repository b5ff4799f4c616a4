"""Threshold policies: one threshold per class turns probabilities into predictions,
``probs >= thresholds`` (the rule ``evaluate`` applies).

Thresholds move F1 (the challenge's mF1), never AP. A class's F1-optimal threshold is noisy
when it has few validation positives (with three positives it mostly fits noise), so
``f1-per-class`` falls back to, or shrinks towards, the single best global threshold.

Every fitted threshold is one of the fitting probabilities (the lowest one predicted
positive), so it lies in [0, 1] and the predictions on the fitting data are exactly the ones
it was chosen for. Like a calibrator, a fitted policy is saved as JSON: its registry spec and
``state()``; :func:`threshold_policy_from_state` rebuilds it.

A policy cannot express a per-image rule such as "the top k labels of each image": its
output is one number per class, fixed once fitted, and every consumer (evaluation, the
``predicted:`` columns, ``cxrlt predict``, submissions, cross-data-set checks) decides
``probs >= thresholds`` from those numbers alone, so an image's decision for one class never
depends on its other classes' probabilities. Apply such a rule to the probabilities a run
writes (see docs/guides/post-training.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from cxrlt.calibration.calibrators import as_matrix, as_targets
from cxrlt.errors import CxrltError
from cxrlt.spec import Spec

DEFAULT_THRESHOLD = 0.5  # the fixed policy's, and mF1's as the challenges compute it

_Self = TypeVar("_Self", bound="ThresholdPolicy")


class ThresholdPolicy(ABC):
    """Fit one threshold per class on validation ``(probs, targets)``."""

    thresholds: np.ndarray | None = None

    def fit(
        self, probs: Any, targets: Any, *, train_prevalence: np.ndarray | None = None
    ) -> np.ndarray:
        """The thresholds, one per class in [0, 1]; ``train_prevalence`` is the fraction of
        positive training images per class, for policies that match it."""
        p = as_matrix(probs, "probabilities")
        if not len(p):
            raise CxrltError("no images to fit thresholds on")
        if ((p < 0) | (p > 1)).any():
            raise CxrltError("probabilities must lie in [0, 1]")
        y = as_targets(targets, p.shape)
        prevalence = None
        if train_prevalence is not None:
            prevalence = np.asarray(train_prevalence, dtype=np.float64)
            in_range = ((prevalence >= 0) & (prevalence <= 1)).all()
            if prevalence.shape != (p.shape[1],) or not in_range:
                raise CxrltError(
                    f"train_prevalence must hold one fraction in [0, 1] per class "
                    f"({p.shape[1]}), got shape {prevalence.shape}"
                )
        self.thresholds = self._fit(p, y, prevalence)
        return self.thresholds.copy()

    def state(self) -> dict[str, Any]:
        """The fitted thresholds, JSON-serialisable."""
        if self.thresholds is None:
            raise CxrltError(
                f"{type(self).__name__} is not fitted: call fit(probs, targets) first, or "
                "rebuild it with threshold_policy_from_state."
            )
        return {"thresholds": self.thresholds.tolist()}

    def load_state(self: _Self, state: Mapping[str, Any]) -> _Self:
        """Take the thresholds that ``state()`` gave, instead of fitting."""
        if set(state) != {"thresholds"}:
            raise CxrltError(
                f"This state does not belong to a threshold policy: it has keys {sorted(state)}, "
                "expected ['thresholds']."
            )
        self.thresholds = np.asarray(state["thresholds"], dtype=np.float64)
        return self

    @abstractmethod
    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray: ...


def _cut_points(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct way to cut one class's scores, highest threshold first.

    Returns the row order by descending score, the thresholds (each distinct score) and how
    many rows ``scores >= threshold`` predicts positive at each (ties fall on one side).
    """
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])  # last row of each tie
    return order, ranked[ends], ends + 1


def _f1_optimal(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold that maximises one class's F1 (the highest one, on a tie)."""
    order, thresholds, counts = _cut_points(scores)
    true_pos = np.cumsum(labels[order])[counts - 1]
    f1 = 2 * true_pos / (counts + labels.sum())  # 2TP / (2TP + FP + FN)
    return float(thresholds[np.argmax(f1)])


def _mean_f1_optimal(probs: np.ndarray, targets: np.ndarray) -> float:
    """The one threshold that maximises the mean F1 over classes with a positive (mF1)."""
    scored = np.flatnonzero(targets.any(axis=0))
    if not len(scored):
        raise CxrltError("no class has a positive in the fitting data: F1 cannot be optimised")
    candidates = np.unique(probs[:, scored])[::-1]
    total_f1 = np.zeros(len(candidates))
    for c in scored:
        positive = targets[:, c] == 1
        pos, neg = np.sort(probs[positive, c]), np.sort(probs[~positive, c])
        true_pos = len(pos) - np.searchsorted(pos, candidates)
        false_pos = len(neg) - np.searchsorted(neg, candidates)
        total_f1 += 2 * true_pos / (true_pos + false_pos + len(pos))
    return float(candidates[np.argmax(total_f1)])


class FixedThreshold(ThresholdPolicy):
    """The same threshold for every class, whatever the data."""

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)

    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray:
        return np.full(probs.shape[1], self.threshold)


class GlobalF1Threshold(ThresholdPolicy):
    """One threshold for every class, the one that maximises the mean per-class F1 (what mF1
    measures; classes without a validation positive have no F1 and are left out)."""

    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray:
        return np.full(probs.shape[1], _mean_f1_optimal(probs, targets))


class PerClassF1Threshold(ThresholdPolicy):
    """Per class the F1-optimal threshold, pulled towards the global one when positives are few.

    With ``n`` validation positives of a class, ``t_c`` its F1-optimal threshold and ``t_g``
    the ``f1-global`` threshold: a class with ``n < max(min_positives, 1)`` gets ``t_g``;
    otherwise ``w * t_c + (1 - w) * t_g`` with ``w = n / (n + shrinkage)``. ``shrinkage = 0``
    keeps ``t_c``; ``shrinkage = k`` gives ``t_c`` half the weight at ``k`` positives.
    """

    def __init__(self, *, min_positives: int = 5, shrinkage: float = 0.0) -> None:
        if min_positives < 0:
            raise ValueError(f"min_positives must be >= 0, got {min_positives}")
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
        self.min_positives = min_positives
        self.shrinkage = float(shrinkage)

    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray:
        global_threshold = _mean_f1_optimal(probs, targets)
        thresholds = np.full(probs.shape[1], global_threshold)
        n_pos = targets.sum(axis=0)
        for c in np.flatnonzero(n_pos >= max(self.min_positives, 1)):
            weight = n_pos[c] / (n_pos[c] + self.shrinkage)
            own = _f1_optimal(probs[:, c], targets[:, c])
            thresholds[c] = weight * own + (1 - weight) * global_threshold
        return thresholds


class PrevalenceThreshold(ThresholdPolicy):
    """Per class the threshold whose predicted-positive rate on the fitting probabilities is
    closest to the class's training prevalence (ties in the scores can keep it from exact; of
    two rates equally close, the lower).

    Needs no validation labels to choose, and keeps rare classes predicted at their base rate.
    A class of prevalence near 0 is predicted for no image (the threshold is just above its
    highest probability, or 1.0 when that is already 1.0).
    """

    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray:
        if train_prevalence is None:
            raise CxrltError(
                "The threshold policy 'prevalence' needs the training prevalence: pass "
                "train_prevalence (positives / images per class, from the training split)."
            )
        thresholds = np.empty(probs.shape[1])
        for c in range(probs.shape[1]):
            _, cuts, counts = _cut_points(probs[:, c])
            above_all = min(float(np.nextafter(cuts[0], np.inf)), 1.0)
            cuts, counts = np.r_[above_all, cuts], np.r_[0, counts]
            thresholds[c] = cuts[np.argmin(np.abs(counts - train_prevalence[c] * len(probs)))]
        return thresholds


def threshold_policy_from_state(spec: Spec | str, state: Mapping[str, Any]) -> ThresholdPolicy:
    """Rebuild a fitted threshold policy from its registry spec and its ``state()``."""
    from cxrlt.registry import resolve

    policy = resolve("thresholds", spec).build()
    if not isinstance(policy, ThresholdPolicy):
        raise CxrltError(
            f"The threshold policy {spec!s} is not a cxrlt.calibration.ThresholdPolicy, so its "
            "state cannot be reloaded."
        )
    return policy.load_state(state)
