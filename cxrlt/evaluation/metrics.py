"""The challenge metrics: macro mAP (primary), mAUC, mF1 and ECE, overall, per class and per
head / medium / tail group.

Classes without a positive in the evaluated split have no defined AP: they are reported
(``n_pos`` 0, NaN AP, AUC and F1) and left out of the macro means; AUC also needs a negative.
ECE is defined for every class, since confident zeros can be miscalibrated too.

ECE (Guo et al., 2017) uses 15 equal-width bins: bin ``b`` holds the probabilities in
``[b/15, (b+1)/15)``, the last bin includes 1, and ECE = sum over bins of
``(n_b / N) * |mean target - mean probability|`` in the bin. Per class, N is the images; the
overall ECE pools every element (image x class pair, classes without positives included) into
one set of 15 bins: it is not the mean of the per-class values.

AP and AUC come from one sort per class rather than scikit-learn's per-call checks (with F1,
about 4x faster on the challenge's 150,000 x 30 matrix; ``bench/evaluation.py``), same tie
handling: AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds, and AUC is the
trapezoidal area under the ROC curve through them, so a positive tied with a negative counts 1/2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError
from cxrlt.evaluation.bootstrap import N_RESAMPLES, SEED, Bootstrap, Intervals
from cxrlt.evaluation.groups import ClassGroups, frequency_groups, group_means

N_BINS = 15
GROUPED = ("AP", "AUC", "F1")  # per-class columns averaged per group, as overall m<name>_<group>


@dataclass(frozen=True)
class Report:
    """Overall means, a per-class table, the head / medium / tail groups when known, and the
    95% intervals of a patient bootstrap when evaluate() had the patients."""

    overall: dict[str, float]
    per_class: pd.DataFrame  # index: class; n_pos, prevalence, threshold, AP, AUC, F1, ECE
    groups: ClassGroups | None = None  # set when evaluate() had the training counts
    intervals: Intervals | None = None  # set when evaluate() had the patients

    @property
    def excluded(self) -> list[str]:
        """Classes left out of the macro means for lack of positives."""
        return self.per_class.index[self.per_class["n_pos"] == 0].tolist()


def _ranked_counts(target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at or above each distinct score, highest score first."""
    order = np.argsort(score)[::-1]  # order within ties does not matter
    ranked = score[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # ends of the tie groups
    tps = np.cumsum(target[order])[last]
    return tps, last + 1 - tps


def _average_precision(tps: np.ndarray, fps: np.ndarray) -> float:
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * (tps / (tps + fps))))


def _roc_auc(tps: np.ndarray, fps: np.ndarray) -> float:
    if fps[-1] == 0:
        return float("nan")
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def chance_average_precision(n_pos: np.ndarray, n: int) -> np.ndarray:
    """The expected AP of a random ranking of ``n`` images, ``n_pos`` of them positive.

    The positive at rank k has k - 1 images above it, each positive with probability
    (n_pos - 1) / (n - 1), so E[AP] = (1/n) sum_k [1/k + (k-1)/k (n_pos-1)/(n-1)]
    = H_n / n + (1 - H_n / n) (n_pos - 1) / (n - 1), with H_n the n-th harmonic number
    (the exact random baseline of Bestgen, 2015). It exceeds the prevalence n_pos / n for
    classes with few positives (one positive in 400 images: 0.016, not 0.0025), so the
    prevalence would understate the chance level of a long-tailed mAP.
    """
    n_pos = np.asarray(n_pos, dtype=np.float64)
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    rest = (n_pos - 1) / (n - 1) if n > 1 else np.zeros_like(n_pos)
    return harmonic / n + (1 - harmonic / n) * rest


def precision_recall(target: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score threshold, highest first: the PR curve."""
    tps, fps = _ranked_counts(np.asarray(target), np.asarray(score))
    if tps[-1] == 0:
        raise CxrltError("A precision-recall curve needs at least one positive.")
    return tps / (tps + fps), tps / tps[-1]


def macro_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean AP over classes with a positive; any monotone score (logits too) gives the same.

    NaN when a score is not finite (a diverged model), so that epoch is never the best.
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if not np.isfinite(scores).all():
        return float("nan")
    values = [
        _average_precision(*_ranked_counts(targets[:, c], scores[:, c]))
        for c in np.flatnonzero(targets.sum(axis=0) > 0)
    ]
    return float(np.mean(values)) if values else float("nan")


def calibration_bins(
    probs: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class and equal-width bin: element count, sum of probabilities, sum of targets.

    Each is a ``(classes, n_bins)`` array; sum over axis 0 for the pooled bins.
    """
    n_classes = probs.shape[1]
    keys = (_bin_index(probs, n_bins) + np.arange(n_classes) * n_bins).ravel()
    size = n_classes * n_bins

    def total(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(keys, weights, minlength=size).reshape(n_classes, n_bins)

    return total(None), total(probs.ravel()), total(targets.ravel())


def _bin_index(probs: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Each probability's equal-width bin, the last one closed (1 falls in it)."""
    return np.minimum((probs * n_bins).astype(np.int64), n_bins - 1)


def _ece(count: np.ndarray, prob_sum: np.ndarray, target_sum: np.ndarray) -> np.ndarray:
    """ECE of each row of bins: sum_b (n_b / N) |mean target - mean prob|, as sums over N."""
    return np.abs(target_sum - prob_sum).sum(axis=-1) / count.sum(axis=-1)


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray) -> float:
    """ECE of all elements of ``probs`` pooled into 15 bins (see the module docstring)."""
    bins = calibration_bins(np.asarray(probs, dtype=np.float64), np.asarray(targets))
    return float(_ece(*(b.sum(axis=0) for b in bins)))


def _checked(
    probs: np.ndarray, targets: np.ndarray, classes: Sequence[str], scores: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets)
    scores = probs if scores is None else np.asarray(scores)
    expected = (len(targets), len(classes))
    if not len(targets):
        raise CxrltError("There are no images to evaluate.")
    for name, array in (("probs", probs), ("targets", targets), ("scores", scores)):
        if array.shape != expected:
            raise CxrltError(
                f"{name} must have one row per image and one column per class {expected}, "
                f"got shape {array.shape}."
            )
    if not (np.isfinite(probs).all() and np.isfinite(scores).all()):
        raise CxrltError("probs and scores must be finite numbers (no NaN or infinity).")
    if probs.min() < 0 or probs.max() > 1:
        raise CxrltError("probs must be probabilities between 0 and 1.")
    if not ((targets == 0) | (targets == 1)).all():
        raise CxrltError("targets must be 0 or 1.")
    return probs, targets.astype(np.int64), scores


def _thresholds(
    threshold: float | Sequence[float] | np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """One threshold per class, or an (images, classes) matrix (held-out thresholds differ
    between the validation halves)."""
    thresholds = np.asarray(threshold, dtype=np.float64)
    if thresholds.ndim == 0:
        return np.full(shape[1], float(thresholds))
    if thresholds.shape not in (shape[1:], shape):
        raise CxrltError(
            f"threshold must be one number, one per class ({shape[1]}) or one per image and "
            f"class {shape}, got shape {thresholds.shape}."
        )
    return thresholds


def _decisions(
    probs: np.ndarray,
    threshold: float | Sequence[float] | np.ndarray,
    predicted: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The 0/1 decisions F1 counts, and each class's threshold for the table (its mean over
    images for per-image thresholds, NaN for binary predictions made elsewhere)."""
    thresholds = _thresholds(threshold, probs.shape)
    if predicted is None:
        shown = thresholds if thresholds.ndim == 1 else thresholds.mean(axis=0)
        return probs >= thresholds, shown
    if np.shape(predicted) != probs.shape:
        raise CxrltError(
            f"predicted has shape {np.shape(predicted)}, the probabilities {probs.shape}"
        )
    return np.asarray(predicted, dtype=float) >= 0.5, np.full(probs.shape[1], np.nan)


def _f1(decided: np.ndarray, positive: np.ndarray, has_pos: np.ndarray) -> np.ndarray:
    """F1 of the decisions; 0 with no true positive (scikit-learn's zero_division=0)."""
    tp = (decided & positive).sum(axis=0)
    errors = (decided != positive).sum(axis=0)
    return np.divide(2 * tp, 2 * tp + errors, out=np.full(len(has_pos), np.nan), where=has_pos)


def evaluate(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    threshold: float | Sequence[float] | np.ndarray = 0.5,
    *,
    scores: np.ndarray | None = None,
    train_counts: Sequence[int] | None = None,
    groups: str = "thirds",
    bounds: tuple[int, int] = (100, 1000),
    predicted: np.ndarray | None = None,
    patients: Sequence[str] | np.ndarray | None = None,
    resamples: int = N_RESAMPLES,
    bootstrap_seed: int = SEED,
) -> Report:
    """mAP, mAUC, mF1 and ECE, per class and overall, plus mAP's chance level (the mean
    expected AP of a random ranking, :func:`chance_average_precision`).

    AP and AUC rank ``scores`` (default ``probs``): pass the logits, since probabilities of
    confident predictions saturate to exactly 1.0 in float32 and the ties change AP. F1 uses
    ``probs >= threshold``, one threshold for all classes or one per class. With
    ``train_counts``, classes are grouped by ``frequency_groups(method=groups, bounds=bounds)``
    and the overall dict gains ``mAP_head`` ... ``mF1_tail``. ``predicted`` (0/1, the shape of
    ``probs``) gives F1 from binary predictions made elsewhere (a run's threshold policy)
    instead of a threshold. With ``patients`` (each image's patient), the report gains 95%
    intervals of every metric from ``resamples`` patient resamples drawn with
    ``bootstrap_seed`` (:mod:`cxrlt.evaluation.bootstrap`).
    """
    probs, targets, scores = _checked(probs, targets, classes, scores)
    decided, thresholds = _decisions(probs, threshold, predicted)
    n_pos = targets.sum(axis=0)
    has_pos = n_pos > 0
    ap = np.full(len(classes), np.nan)
    auc = np.full(len(classes), np.nan)
    for c in np.flatnonzero(has_pos):
        tps, fps = _ranked_counts(targets[:, c], scores[:, c])
        ap[c], auc[c] = _average_precision(tps, fps), _roc_auc(tps, fps)
    bins = calibration_bins(probs, targets)
    per_class = pd.DataFrame(
        {
            "n_pos": n_pos,
            "prevalence": targets.mean(axis=0),
            "threshold": thresholds,
            "AP": ap,
            "AUC": auc,
            "F1": _f1(decided, targets.astype(bool), has_pos),
            "ECE": _ece(*bins),
        },
        index=pd.Index(list(classes), name="class"),
    )
    overall = {
        "mAP": float(per_class["AP"].mean()),
        "mAUC": float(per_class["AUC"].mean()),
        "mF1": float(per_class["F1"].mean()),
        "ECE": float(_ece(*(b.sum(axis=0) for b in bins))),
        "mAP_chance": float(chance_average_precision(n_pos[has_pos], len(targets)).mean()),
        "n_images": int(len(targets)),
        "n_classes_scored": int(has_pos.sum()),
    }
    class_groups = None
    if train_counts is not None:
        class_groups = frequency_groups(train_counts, list(classes), groups, bounds)
        for column in GROUPED:
            for name, value in group_means(per_class, class_groups, column).items():
                overall[f"m{column}_{name}"] = value
    if patients is None:
        return Report(overall, per_class, class_groups)
    resampled = Bootstrap(
        targets=targets,
        scores=scores,
        decisions=decided,
        probs=probs,
        bins=_bin_index(probs),
        n_bins=N_BINS,
        patients=patients,
    ).resample(resamples, bootstrap_seed, groups=class_groups, grouped=GROUPED)
    return Report(overall, per_class, class_groups, Intervals.of(resampled, classes))
