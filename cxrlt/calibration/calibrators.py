"""Calibrators: maps from raw logits to probabilities, fitted on held-out validation data.

They replace the loss's activation, so they start from the logits, before a sigmoid has
saturated the tails. Every calibrator here maps each class's logits through a strictly
increasing function, so the ranking within a class is kept and with it the class's AP and
AUROC (Guo et al. 2017; domain facts, section 5): calibration moves ECE and the F1 at a
threshold, not mAP, and ranking a calibrator's probabilities gives the AP of the logits.
Temperature and Platt scaling are strictly monotone by construction (a Platt slope <= 0 is
not used, see :class:`PlattScaling`); isotonic regression is flat on steps, so a negligible
strictly increasing term breaks its ties (:class:`IsotonicCalibration`). Probabilities are
float64, whose sigmoid reaches exactly 1.0 only once the scaled logit x passes about 36.7
(there ``1 + exp(-x)`` rounds to 1), so distinct logits keep distinct probabilities below it.

A class that a calibrator cannot fit (no positive or no negative in its fitting data, so no
finite optimum; for temperature also logits that separate the labels perfectly, where T -> 0)
keeps the loss's own activation, the ``fallback`` callable (logits -> probabilities) given
at fit time and again at rebuild time: sigmoid(s z) for LDAM, the shifted sigmoid of the
Distribution-Balanced loss; a plain sigmoid would be off by the loss's scale or shift.

A fitted calibrator is saved as JSON, never pickled: the registry spec that built it
(``str(resolved.spec)``, name and parameters) beside its ``state()``, which names the classes
it fitted (``fitted``); :func:`calibrator_from_state` rebuilds it through the registry. The
fallback is code, so it is never saved: the caller rebuilds it from the run's loss.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
from scipy.special import expit

from cxrlt.errors import CxrltError
from cxrlt.spec import Spec

T_START = 1.5  # Guo et al.'s starting temperature: networks are usually over-confident
TIE_BREAK = 1e-6  # weight of isotonic's strictly increasing term: far below any ECE bin

Activation = Callable[[np.ndarray], np.ndarray]  # (N, C) float64 logits -> probabilities

_Self = TypeVar("_Self", bound="Calibrator")


class LossActivation:
    """A loss's ``activation`` (a sigmoid for a loss without one) as an :data:`Activation`,
    computed in float64, whose sigmoid saturates to 1.0 past about 36.7 rather than float32's
    16.6 (with LDAM's s = 30 that is z > 1.2 rather than 0.55). An object, not a closure, so
    a calibrator holding it as its fallback pickles with the loss (``learn.export()``)."""

    def __init__(self, loss: Any) -> None:
        self.loss = loss

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        import torch

        activation = getattr(self.loss, "activation", torch.sigmoid)
        with torch.no_grad():
            z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
            return activation(z).double().cpu().numpy()


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


def separates(logits: np.ndarray, targets: np.ndarray) -> bool:
    """Whether every positive's logit lies above every negative's (both must exist)."""
    return bool(logits[targets == 1].min() > logits[targets == 0].max())


class Calibrator(ABC):
    """Fit on validation ``(logits, targets)``, then map logits to float64 probabilities.

    Subclasses name their fitted values in ``state_keys``, return them as JSON-ready data from
    ``_fit`` and read them from ``self._fitted`` in ``_transform``. ``_fit`` may add
    ``"fitted"``, one bool per class: the classes marked False get the fallback activation
    (their values are ignored; store None). Without it every class counts as fitted.
    """

    state_keys: tuple[str, ...] = ()
    _fitted: dict[str, Any] | None = None
    _fallback: Activation | None = None

    def fit(self: _Self, logits: Any, targets: Any, *, fallback: Activation) -> _Self:
        """Fit on validation data; ``fallback`` (the loss's activation) serves the classes
        this calibrator cannot fit."""
        z = as_matrix(logits, "logits")
        values = self._fit(z, as_targets(targets, z.shape))
        fitted = [bool(f) for f in values.pop("fitted", [True] * z.shape[1])]
        if len(fitted) != z.shape[1]:
            raise CxrltError(
                f"{type(self).__name__}._fit marked {len(fitted)} classes as fitted or not, "
                f"the logits have {z.shape[1]}: give one bool per class."
            )
        self._fitted = {"n_classes": z.shape[1], "fitted": fitted, **values}
        self._fallback = fallback
        return self

    def transform(self, logits: Any) -> np.ndarray:
        fitted = self._require_fitted()
        z = as_matrix(logits, "logits")
        if z.shape[1] != fitted["n_classes"]:
            raise CxrltError(
                f"{type(self).__name__} was fitted on {fitted['n_classes']} classes, "
                f"the logits have {z.shape[1]}"
            )
        probs = self._transform(z)
        unfit = ~np.asarray(fitted["fitted"], dtype=bool)
        if unfit.any():
            probs[:, unfit] = np.asarray(self._fallback(z), dtype=np.float64)[:, unfit]
        return probs

    def state(self) -> dict[str, Any]:
        """The fitted values and the fitted classes, JSON-serialisable."""
        return copy.deepcopy(self._require_fitted())

    def load_state(self: _Self, state: Mapping[str, Any], *, fallback: Activation) -> _Self:
        """Take the fitted values that ``state()`` gave, instead of fitting; ``fallback`` is
        the activation of the loss the run was trained with, as at fit time."""
        expected = {"n_classes", "fitted", *self.state_keys}
        if set(state) != expected:
            raise CxrltError(
                f"This state does not belong to a {type(self).__name__}: it has keys "
                f"{sorted(state)}, expected {sorted(expected)} (states saved before cxrlt "
                "recorded the fitted classes lack 'fitted': calibrate the run again with "
                "`cxrlt run --from-run RUN_DIR --post <calibrator>`)."
            )
        self._fitted = copy.deepcopy(dict(state))
        self._fallback = fallback
        return self

    def _require_fitted(self) -> dict[str, Any]:
        if self._fitted is None:
            raise CxrltError(
                f"{type(self).__name__} is not fitted: call fit(logits, targets, fallback=...) "
                "first, or rebuild it with calibrator_from_state."
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


def has_finite_temperature(logits: np.ndarray, targets: np.ndarray) -> bool:
    """Both labels present and not perfectly separated: otherwise the NLL falls all the way
    to T -> 0, where new images' probabilities round to exactly 0 or 1 and tie."""
    return bool(has_both_labels(targets)) and not separates(logits, targets)


class TemperatureScaling(Calibrator):
    """``p = sigmoid(z / T)``: one T for all classes, or one per class with ``per_class``.

    One parameter per class cannot overfit a validation set the way Platt or isotonic can,
    and T > 0 keeps each class's ranking exactly, as long as ``z / T`` stays below about
    36.7, where the float64 sigmoid rounds to 1.0 (float32 already at about 16.6: the logits
    are taken as float64). A class, or for one T the pooled data, without a finite optimum
    (see :func:`has_finite_temperature`) keeps the loss's activation.
    """

    state_keys = ("temperature",)

    def __init__(self, *, per_class: bool = False) -> None:
        self.per_class = per_class

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        if not self.per_class:
            fits = has_finite_temperature(logits.ravel(), targets.ravel())
            return {
                "temperature": fit_temperature(logits, targets) if fits else None,
                "fitted": [fits] * logits.shape[1],
            }
        fitted = [
            has_finite_temperature(logits[:, c], targets[:, c]) for c in range(logits.shape[1])
        ]
        temperatures = [
            fit_temperature(logits[:, c], targets[:, c]) if fits else None
            for c, fits in enumerate(fitted)
        ]
        return {"temperature": temperatures, "fitted": fitted}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        # an unfitted class's None becomes NaN here; transform() replaces it by the fallback
        return expit(logits / np.asarray(self._fitted["temperature"], dtype=np.float64))


class PlattScaling(Calibrator):
    """Per class ``p = sigmoid(a z + b)`` by logistic regression on the logit (Platt 1999).

    Lightly regularised: scikit-learn's L2 penalty ``a**2 / 2`` against ``C`` times the summed
    log-loss (the intercept is not penalised), which keeps ``a`` finite when a class's
    validation logits separate it perfectly. A fitted slope ``a <= 0`` (validation ranks the
    class backwards, or not at all) is not used: it would reverse or erase the ranking the
    model learnt, and the best slope constrained to ``a >= 0`` is 0, a constant that ties every
    image, so the class keeps the loss's activation, the model's own ranking and
    probabilities, as a class without both labels does.
    """

    state_keys = ("slope", "intercept")

    def __init__(self, *, C: float = 1.0) -> None:
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        self.C = C

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        n_classes = logits.shape[1]
        slope: list[float | None] = [None] * n_classes
        intercept: list[float | None] = [None] * n_classes
        for c in np.flatnonzero(has_both_labels(targets)):
            model = LogisticRegression(C=self.C).fit(logits[:, [c]], targets[:, c])
            if model.coef_[0, 0] > 0:
                slope[c], intercept[c] = float(model.coef_[0, 0]), float(model.intercept_[0])
        return {
            "slope": slope,
            "intercept": intercept,
            "fitted": [a is not None for a in slope],
        }

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        slope = np.asarray(self._fitted["slope"], dtype=np.float64)
        return expit(logits * slope + np.asarray(self._fitted["intercept"], dtype=np.float64))


def strictly_increasing_unit(logits: np.ndarray) -> np.ndarray:
    """``(1 + z / (1 + |z|)) / 2``: strictly increasing from R onto (0, 1), with tails that
    flatten like 1 / z**2, far slower than a sigmoid's exp(-|z|): weighted by ``TIE_BREAK``
    in float64 it still tells neighbouring float32 logits apart for 0.01 < |z| < 300."""
    return 0.5 * (1.0 + logits / (1.0 + np.abs(logits)))


class IsotonicCalibration(Calibrator):
    """Per class, the non-decreasing step function of the logit that fits the labels best
    (Zadrozny & Elkan 2002), linear between its knots and clipped beyond them, made strictly
    increasing: ``p = (1 - e) g(z) + e u(z)`` with ``g`` the isotonic fit,
    ``u`` = :func:`strictly_increasing_unit` and ``e`` = ``TIE_BREAK`` (1e-6).

    Plain isotonic regression is flat on steps (and beyond its knots), so new images the
    logits ranked apart tie, which lowers AP. The added term orders them as the logits do,
    stays in [0, 1], and moves no probability by more than 1e-6. The state holds each class's
    knots (scikit-learn's ``X_thresholds_``, ``y_thresholds_``); unfitted classes hold None.
    """

    state_keys = ("x", "y")

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        from sklearn.isotonic import IsotonicRegression

        fitted = has_both_labels(targets)
        xs: list[list[float] | None] = [None] * logits.shape[1]
        ys: list[list[float] | None] = [None] * logits.shape[1]
        for c in np.flatnonzero(fitted):
            model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            model.fit(logits[:, c], targets[:, c])
            xs[c], ys[c] = model.X_thresholds_.tolist(), model.y_thresholds_.tolist()
        return {"x": xs, "y": ys, "fitted": fitted.tolist()}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        steps = np.full(logits.shape, np.nan)  # unfitted classes: transform() fills them
        for c, (x, y) in enumerate(zip(self._fitted["x"], self._fitted["y"], strict=True)):
            if x is not None:
                steps[:, c] = np.interp(logits[:, c], x, y)
        return (1 - TIE_BREAK) * steps + TIE_BREAK * strictly_increasing_unit(logits)


def calibrator_from_state(
    spec: Spec | str, state: Mapping[str, Any], *, fallback: Activation
) -> Calibrator:
    """Rebuild a fitted calibrator from its registry spec (``"platt:C=1.0"``, as
    ``str(resolved.spec)`` saved it) and its ``state()``; no pickled code is loaded.
    ``fallback`` is the run's loss activation, for the classes the calibrator did not fit."""
    from cxrlt.registry import resolve

    calibrator = resolve("calibrators", spec).build()
    if not isinstance(calibrator, Calibrator):
        raise CxrltError(
            f"The calibrator {spec!s} is not a cxrlt.calibration.Calibrator, so its state "
            "cannot be reloaded."
        )
    return calibrator.load_state(state, fallback=fallback)
