"""Post-hoc calibration, fitted on validation data after training: calibrators map logits to
probabilities, threshold policies turn probabilities into predictions."""

from cxrlt.calibration.calibrators import Calibrator, calibrator_from_state
from cxrlt.calibration.thresholds import ThresholdPolicy, threshold_policy_from_state

__all__ = ["Calibrator", "ThresholdPolicy", "calibrator_from_state", "threshold_policy_from_state"]
