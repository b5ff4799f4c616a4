"""One prediction per study: the predictions of a study's images (its views) merged.

A study's images (a PA or AP film and a lateral, one patient on one day) share one report, so
one set of labels; a finding that one view shows clearly can lift the other's score. The merge
needs the images' table (which images form a study, their projections), which the model never
sees, so the step leaves the model as it is and acts on predictions instead
(:meth:`StudyViews.on_predictions`). A run applies it to the validation logits of every model
it reports and to the test logits alike (:func:`apply_to_predictions`), so that metrics and
submission agree; ``cxrlt predict`` applies it to images whose table names their studies.
Nothing is chosen on validation images: the method is a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
from fastai.learner import Learner

from cxrlt.data.table import PROJECTION_COLUMN, STUDY_COLUMN
from cxrlt.errors import CxrltError
from cxrlt.post import PostStep, StepSpecs, resolve_steps

Method = Literal["mean", "max", "weighted"]
METHODS = ("mean", "max", "weighted")
# Assumed, not taken from a paper: a lateral film shows less of most findings than a frontal one.
DEFAULT_WEIGHTS = {"PA": 1.0, "AP": 1.0, "LATERAL": 0.5}


def merge_views(
    logits: np.ndarray,
    studies: np.ndarray,
    *,
    method: Method = "mean",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Each row's logits replaced by its study's merge: the ``mean``, the ``max`` (the max
    probability too, the activation being increasing), or the ``weighted`` mean with one weight
    per row. Rows with a blank study stand alone."""
    codes, _ = pd.factorize(pd.Series(studies).replace("", np.nan))
    alone = codes < 0
    codes[alone] = codes.max(initial=-1) + 1 + np.arange(alone.sum())
    merged = np.zeros((codes.max(initial=-1) + 1, logits.shape[1]), np.float64)
    if method == "max":
        merged[:] = -np.inf
        np.maximum.at(merged, codes, logits)
        return merged[codes].astype(logits.dtype)
    row_weights = np.ones(len(codes)) if method == "mean" or weights is None else weights
    np.add.at(merged, codes, logits * row_weights[:, None])
    totals = np.bincount(codes, row_weights, minlength=len(merged))
    return (merged / totals[:, None])[codes].astype(logits.dtype)


class StudyViews(PostStep):
    """Merge the logits of a study's images by ``method``: ``mean``, ``max``, or ``weighted``
    by projection (``weights`` of PA, AP and LATERAL, by default 1, 1 and 0.5: assumed, no
    published values; other projections weigh 1). Images whose study is unknown keep their
    own."""

    def __init__(self, method: Method = "mean", weights: Mapping[str, float] | None = None):
        if method not in METHODS:
            raise CxrltError(f"study-views: method {method!r} is not one of {', '.join(METHODS)}.")
        if weights is not None and method != "weighted":
            raise CxrltError(
                f"study-views: weights apply to method=weighted only, not {method}: leave "
                "them out or set method=weighted."
            )
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        bad = {k: v for k, v in weights.items() if not isinstance(v, int | float) or v <= 0}
        if bad:
            raise CxrltError(
                f"study-views: every weight must be a positive number, got {bad}: e.g. "
                "weights={'PA': 1.0, 'AP': 1.0, 'LATERAL': 0.5}."
            )
        self.method = method
        self.weights = {str(k).upper(): float(v) for k, v in weights.items()}

    def check(self, learn: Learner) -> None:
        """Refuse data whose validation or test images name no study (or, to weight by
        projection, no projection): the merge would silently do nothing there."""
        data = getattr(learn.dls, "data", None)
        if data is None:
            raise CxrltError(
                "study-views needs each image's study: build the loaders with cxr_dataloaders "
                "from a data set that has them."
            )
        needed = [STUDY_COLUMN, *([PROJECTION_COLUMN] if self.method == "weighted" else [])]
        for part, table in (("labelled", data.frame), ("test", data.test)):
            missing = [c for c in needed if table is not None and c not in table]
            if missing:
                raise CxrltError(
                    f"study-views: the {part} images of the data set {data.name!r} name no "
                    f"{' or '.join(missing)}, so their predictions cannot be merged by study. "
                    "Use files that give each image's study (and projection): for cxr-lt-2026 "
                    "name PadChest's own label file with patients_csv=PATH, for csv name "
                    "study_column= (projection_column=), or try --dataset synthetic:views=2; "
                    "or leave study-views out"
                    + (" or use method=mean." if PROJECTION_COLUMN in missing else ".")
                )

    def on_predictions(self, logits: np.ndarray, images: pd.DataFrame) -> np.ndarray:
        """``logits`` of the rows of ``images`` (a table with ``study``, and ``projection``
        for the weighted mean) merged per study; a table without studies leaves them as
        they are (each image its own study)."""
        if STUDY_COLUMN not in images:
            return logits
        weights = None
        if self.method == "weighted" and PROJECTION_COLUMN in images:
            weights = images[PROJECTION_COLUMN].map(self.weights).fillna(1.0).to_numpy(float)
        studies = images[STUDY_COLUMN].fillna("").astype(str).to_numpy()
        return merge_views(logits, studies, method=self.method, weights=weights)


def apply_to_predictions(steps: StepSpecs, logits: np.ndarray, images: pd.DataFrame) -> np.ndarray:
    """``logits`` (one row per row of ``images``) through every step that acts on predictions
    (``on_predictions``), in order; the other steps acted on the model already."""
    for spec in resolve_steps(steps):
        merge = getattr(spec.build(), "on_predictions", None)
        if merge is not None:
            logits = merge(logits, images)
    return logits
