"""The challenge metrics: macro mAP (primary), mAUC and mF1, overall and per class.

Classes without a positive in the evaluated split have no defined AP: they are reported
(``n_pos`` 0, NaN scores) and left out of the macro means.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score


@dataclass(frozen=True)
class Report:
    """Overall means and a per-class table."""

    overall: dict[str, float]
    per_class: pd.DataFrame  # index: class; columns n_pos, prevalence, AP, AUC, F1

    @property
    def excluded(self) -> list[str]:
        """Classes left out of the macro means for lack of positives."""
        return self.per_class.index[self.per_class["n_pos"] == 0].tolist()


def _per_class(function, targets: np.ndarray, scores: np.ndarray, ok: np.ndarray) -> np.ndarray:
    values = np.full(targets.shape[1], np.nan)
    for c in np.flatnonzero(ok):
        values[c] = function(targets[:, c], scores[:, c])
    return values


def macro_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean AP over classes with a positive; any monotone score (logits too) gives the same."""
    has_pos = targets.sum(axis=0) > 0
    return float(np.nanmean(_per_class(average_precision_score, targets, scores, has_pos)))


def evaluate(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    threshold: float = 0.5,
    *,
    scores: np.ndarray | None = None,
) -> Report:
    """mAP, mAUC and mF1 at ``threshold``, plus the chance level of mAP (mean prevalence).

    AP and AUC rank ``scores`` (default ``probs``): pass the logits, since probabilities of
    confident predictions saturate to exactly 1.0 in float32 and the ties change AP.
    """
    scores = probs if scores is None else scores
    targets = np.asarray(targets).astype(np.int64)
    n_pos = targets.sum(axis=0)
    has_pos = n_pos > 0
    has_both = has_pos & (n_pos < len(targets))
    predicted = (probs >= threshold).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1 = _per_class(lambda t, p: f1_score(t, p, zero_division=0), targets, predicted, has_pos)
    per_class = pd.DataFrame(
        {
            "n_pos": n_pos,
            "prevalence": targets.mean(axis=0),
            "AP": _per_class(average_precision_score, targets, scores, has_pos),
            "AUC": _per_class(roc_auc_score, targets, scores, has_both),
            "F1": f1,
        },
        index=pd.Index(list(classes), name="class"),
    )
    overall = {
        "mAP": float(per_class["AP"].mean()),
        "mAUC": float(per_class["AUC"].mean()),
        "mF1": float(per_class["F1"].mean()),
        "mAP_chance": float(per_class.loc[has_pos, "prevalence"].mean()),
        "n_images": int(len(targets)),
        "n_classes_scored": int(has_pos.sum()),
    }
    return Report(overall, per_class)
