"""The plugin's threshold policy: one threshold per class turns probabilities into findings."""

from __future__ import annotations

import numpy as np

from cxrlt import ThresholdPolicy


class MyThreshold(ThresholdPolicy):
    """Per class the ``1 - fpr`` quantile of its validation negatives' probabilities, so that
    about a fraction ``fpr`` of the negatives are predicted positive; a class without
    negatives gets 0.5.

    ``_fit`` returns one threshold per class in [0, 1]; cxrlt predicts ``probs >= threshold``.
    """

    def __init__(self, *, fpr: float = 0.1) -> None:
        if not 0 <= fpr <= 1:
            raise ValueError(f"fpr must be in [0, 1], got {fpr}")
        self.fpr = fpr

    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray:
        thresholds = np.full(probs.shape[1], 0.5)
        for c in range(probs.shape[1]):
            negatives = probs[targets[:, c] == 0, c]
            if len(negatives):
                thresholds[c] = np.quantile(negatives, 1 - self.fpr)
        return thresholds
