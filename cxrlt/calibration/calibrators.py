"""Calibrators: maps from raw logits to probabilities, fitted on held-out validation data.

They replace the loss's activation, so they start from the logits, before a sigmoid has
saturated the tails. Each maps every class's logits through a monotone increasing function,
so the ranking within a class is kept and with it the class's AP and AUROC: calibration moves
ECE and the F1 at a threshold, not mAP. Temperature and Platt (slope > 0) are strictly
monotone and keep AP exactly; isotonic regression is monotone but flat on intervals, and the
ties it creates can change AP.

Classes without a positive or without a negative in the fitting data have nothing to fit (no
finite optimum): they keep the identity calibration ``sigmoid(z)``.

A fitted calibrator is saved as JSON, never pickled: the registry spec that built it
(``str(resolved.spec)``, name and parameters) beside its ``state()``;
:func:`calibrator_from_state` rebuilds it through the registry.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from scipy.special import expit

from cxrlt.errors import CxrltError
from cxrlt.spec import Spec

T_START = 1.5  # Guo et al.'s starting temperature: networks are usually over-confident

_Self = TypeVar("_Self", bound="Calibrator")


def as_matrix(values: Any, what: str) -> np.ndarray:
    """A finite (N, C) float64 matrix, or a CxrltError that says what is wrong."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise CxrltError(f"{what} must be an (images, classes) matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise CxrltError(f"{what} hold NaN or infinite values")
    return matrix


def as_targets(targets: Any, shape: tuple[int, ...]) -> np.ndarray:
    """0/1 labels of the given shape as float64."""
    labels = np.asarray(targets, dtype=np.float64)
    if labels.shape != shape:
        raise CxrltError(f"targets have shape {labels.shape}, the scores {shape}")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise CxrltError("targets must be 0 or 1")
    return labels


def has_both_labels(targets: np.ndarray) -> np.ndarray:
    """Per class (or for a vector): whether it holds a positive and a negative."""
    return targets.any(axis=0) & (1 - targets).any(axis=0)


class Calibrator(ABC):
    """Fit on validation ``(logits, targets)``, then map logits to float64 probabilities.

    Subclasses name their fitted values in ``state_keys``, return them as JSON-ready data from
    ``_fit`` and read them from ``self._fitted`` in ``_transform``.
    """

    state_keys: tuple[str, ...] = ()
    _fitted: dict[str, Any] | None = None

    def fit(self: _Self, logits: Any, targets: Any) -> _Self:
        z = as_matrix(logits, "logits")
        self._fitted = {"n_classes": z.shape[1], **self._fit(z, as_targets(targets, z.shape))}
        return self

    def transform(self, logits: Any) -> np.ndarray:
        fitted = self._require_fitted()
        z = as_matrix(logits, "logits")
        if z.shape[1] != fitted["n_classes"]:
            raise CxrltError(
                f"{type(self).__name__} was fitted on {fitted['n_classes']} classes, "
                f"the logits have {z.shape[1]}"
            )
        return self._transform(z)

    def state(self) -> dict[str, Any]:
        """The fitted values, JSON-serialisable."""
        return copy.deepcopy(self._require_fitted())

    def load_state(self: _Self, state: Mapping[str, Any]) -> _Self:
        """Take the fitted values that ``state()`` gave, instead of fitting."""
        expected = {"n_classes", *self.state_keys}
        if set(state) != expected:
            raise CxrltError(
                f"This state does not belong to a {type(self).__name__}: it has keys "
                f"{sorted(state)}, expected {sorted(expected)}."
            )
        self._fitted = copy.deepcopy(dict(state))
        return self

    def _require_fitted(self) -> dict[str, Any]:
        if self._fitted is None:
            raise CxrltError(
                f"{type(self).__name__} is not fitted: call fit(logits, targets) first, or "
                "rebuild it with calibrator_from_state."
            )
        return self._fitted

    @abstractmethod
    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]: ...

    @abstractmethod
    def _transform(self, logits: np.ndarray) -> np.ndarray: ...


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The T minimising the mean binary NLL of ``sigmoid(logits / T)`` over all elements.

    LBFGS on log T (so T stays positive) from T = 1.5, in float64 (Guo et al. 2017).
    """
    import torch
    import torch.nn.functional as F

    z = torch.as_tensor(np.ravel(logits), dtype=torch.float64)
    y = torch.as_tensor(np.ravel(targets), dtype=torch.float64)
    log_t = torch.tensor(math.log(T_START), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t], max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


class TemperatureScaling(Calibrator):
    """``p = sigmoid(z / T)``: one T for all classes, or one per class with ``per_class``.

    One parameter per class cannot overfit a validation set the way Platt or isotonic can,
    and it keeps each class's ranking exactly.
    """

    state_keys = ("temperature",)

    def __init__(self, *, per_class: bool = False) -> None:
        self.per_class = per_class

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        if not self.per_class:
            fits = bool(has_both_labels(targets.ravel()))
            return {"temperature": fit_temperature(logits, targets) if fits else 1.0}
        both = has_both_labels(targets)
        temperatures = [
            fit_temperature(logits[:, c], targets[:, c]) if both[c] else 1.0
            for c in range(logits.shape[1])
        ]
        return {"temperature": temperatures}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        return expit(logits / np.asarray(self._fitted["temperature"], dtype=np.float64))


class PlattScaling(Calibrator):
    """Per class ``p = sigmoid(a z + b)`` by logistic regression on the logit (Platt 1999).

    Lightly regularised: scikit-learn's L2 penalty ``a**2 / 2`` against ``C`` times the summed
    log-loss (the intercept is not penalised), which keeps ``a`` finite when a class's
    validation logits separate it perfectly. A slope ``a <= 0`` (logits that rank the class
    backwards on validation) is kept as fitted: it is the calibrated map, but it changes AP.
    """

    state_keys = ("slope", "intercept")

    def __init__(self, *, C: float = 1.0) -> None:
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        self.C = C

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        slope = np.ones(logits.shape[1])
        intercept = np.zeros(logits.shape[1])
        for c in np.flatnonzero(has_both_labels(targets)):
            model = LogisticRegression(C=self.C).fit(logits[:, [c]], targets[:, c])
            slope[c], intercept[c] = model.coef_[0, 0], model.intercept_[0]
        return {"slope": slope.tolist(), "intercept": intercept.tolist()}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        slope = np.asarray(self._fitted["slope"], dtype=np.float64)
        return expit(logits * slope + np.asarray(self._fitted["intercept"], dtype=np.float64))


class IsotonicCalibration(Calibrator):
    """Per class, the non-decreasing step function of the logit that fits the labels best
    (Zadrozny & Elkan 2002), linear between its knots and clipped beyond them.

    The most flexible map here, so it needs the most validation data; its flat steps tie
    images the logits ranked apart, which can change AP. The state holds each class's knots
    (scikit-learn's ``X_thresholds_``, ``y_thresholds_``); fallback classes hold ``None``.
    """

    state_keys = ("x", "y")

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        from sklearn.isotonic import IsotonicRegression

        both = has_both_labels(targets)
        xs: list[list[float] | None] = [None] * logits.shape[1]
        ys: list[list[float] | None] = [None] * logits.shape[1]
        for c in np.flatnonzero(both):
            model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            model.fit(logits[:, c], targets[:, c])
            xs[c], ys[c] = model.X_thresholds_.tolist(), model.y_thresholds_.tolist()
        return {"x": xs, "y": ys}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        probs = expit(logits)
        for c, (x, y) in enumerate(zip(self._fitted["x"], self._fitted["y"], strict=True)):
            if x is not None:
                probs[:, c] = np.interp(logits[:, c], x, y)
        return probs


def calibrator_from_state(spec: Spec | str, state: Mapping[str, Any]) -> Calibrator:
    """Rebuild a fitted calibrator from its registry spec (``"platt:C=1.0"``, as
    ``str(resolved.spec)`` saved it) and its ``state()``; no pickled code is loaded."""
    from cxrlt.registry import resolve

    calibrator = resolve("calibrators", spec).build()
    if not isinstance(calibrator, Calibrator):
        raise CxrltError(
            f"The calibrator {spec!s} is not a cxrlt.calibration.Calibrator, so its state "
            "cannot be reloaded."
        )
    return calibrator.load_state(state)
