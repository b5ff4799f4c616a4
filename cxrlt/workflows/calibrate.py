"""The calibration stage of a run: calibrator and thresholds fitted on held-out halves of the
validation split, each half scored with what the other half fitted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxrlt.evaluation.selection import KEPT, ROLES

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from cxrlt.workflows.data import RunData
    from cxrlt.workflows.post_training import Branch
    from cxrlt.workflows.specs import RunSpecs


@dataclass(frozen=True)
class Calibrated:
    """The validation targets, the cross-fitted logits (each half's from the model chosen on
    the other half), the loss's activation, the fitted calibration
    (:func:`cxrlt.calibration.held_out.fit_held_out`) and the kept model's post steps."""

    targets: np.ndarray
    logits: np.ndarray
    activation: Any
    fitted: Any
    steps: tuple = ()

    def probabilities(self, logits: np.ndarray, images: pd.DataFrame) -> np.ndarray:
        """New images' probabilities from the kept model's ``logits``, as the validation
        images' were made: merged by the steps that act on predictions (by study, from
        ``images``, one row per image), then calibrated (or the loss's activation)."""
        from cxrlt.post.study_views import apply_to_predictions

        merged = apply_to_predictions(self.steps, logits, images)
        calibrator = self.fitted.calibrator
        return calibrator.transform(merged) if calibrator is not None else self.activation(merged)


def calibrate(
    specs: RunSpecs, loss_func: Any, data: RunData, branches: dict[str, Branch]
) -> Calibrated:
    """Fit the run's calibrator (if any) and threshold policy on the branches' logits."""
    import numpy as np

    from cxrlt.calibration.calibrators import LossActivation
    from cxrlt.calibration.held_out import fit_held_out
    from cxrlt.evaluation.selection import cross_fitted

    dls = data.dls
    targets = dls.data.labels[dls.is_valid].astype(np.float32)
    half_logits = [branches[role].logits for role in ROLES[:-1]]
    activation = LossActivation(loss_func)
    fitted = fit_held_out(
        half_logits,
        targets,
        data.halves,
        activation=activation,
        calibrator=specs.calibrator,
        thresholds=specs.thresholds,
        train_prevalence=dls.class_counts / dls.n_train,
        kept_logits=branches[KEPT].logits,
    )
    logits = cross_fitted(half_logits, data.halves)
    return Calibrated(targets, logits, activation, fitted, tuple(branches[KEPT].steps))
