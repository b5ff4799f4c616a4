"""The plugin's calibrator: validation logits to probabilities that mean what they say."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from cxrlt import Calibrator


class MyCalibrator(Calibrator):
    """One temperature for every class, ``sigmoid(z / T)``: the T of ``temperatures`` with
    the lowest validation log-loss.

    ``_fit`` returns the fitted values, JSON-ready, under the names in ``state_keys``;
    ``_transform`` reads them from ``self._fitted``. Any T > 0 keeps each class's ranking
    (and so its AP), as a calibrator must.
    """

    state_keys = ("temperature",)

    def __init__(self, *, temperatures: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)) -> None:
        if not temperatures or min(temperatures) <= 0:
            raise ValueError(f"temperatures must be positive numbers, got {temperatures}")
        self.temperatures = tuple(float(t) for t in temperatures)

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        def log_loss(temperature: float) -> float:
            z = logits / temperature  # BCE on logits: log(1 + e^z) - y z
            return float(np.mean(np.logaddexp(0, z) - targets * z))

        return {"temperature": min(self.temperatures, key=log_loss)}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        return expit(logits / self._fitted["temperature"])
