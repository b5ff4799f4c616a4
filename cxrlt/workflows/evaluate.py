"""The evaluation stage of a run: the metric report of the calibrated validation predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cxrlt.evaluation.metrics import Report
    from cxrlt.workflows.calibrate import Calibrated
    from cxrlt.workflows.data import RunData


def evaluate_run(calibrated: Calibrated, data: RunData) -> Report:
    """Overall, per class and per frequency group, with patient-grouped intervals."""
    from cxrlt.evaluation.metrics import evaluate

    dls = data.dls
    fitted = calibrated.fitted
    return evaluate(
        fitted.probs,
        calibrated.targets,
        dls.classes,
        threshold=fitted.thresholds,
        scores=calibrated.logits,
        train_counts=dls.class_counts,
        patients=dls.data.patients[dls.is_valid],
    )
