"""Calibrators and threshold policies on a fastai Learner, as ``--post`` fits them for a run.

``learn.calibrate("temp-scale")`` and ``learn.thresholds("f1-per-class")`` fit on the raw
logits of the learner's validation set (or of a labelled DataLoader given) and keep what they
fitted on the learner: ``learn.calibrator`` and ``learn.threshold_policy``, their specs in
``learn.specs["calibrator"]`` and ``learn.specs["thresholds"]`` (the keys a run records).
:func:`calibrated_probabilities` and :func:`predicted_labels` apply them to new logits.

Both are plain Python objects, so ``learn.export()`` pickles them with the learner; the
calibrator's fallback is a :class:`LossActivation` of the learner's loss, which pickles too.
They describe the current model: a post-training step discards both (``learn.post``), and a
new calibrator discards the thresholds chosen on the old one's probabilities.

A run scores each validation half with what the other half fitted (:mod:`.held_out`); here
they are fitted on all of ``dl``, so a score on the same images flatters them: score on
other labelled images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastcore.basics import noop, patch

from cxrlt.calibration.calibrators import Calibrator, LossActivation
from cxrlt.calibration.thresholds import DEFAULT_THRESHOLD, ThresholdPolicy
from cxrlt.errors import CxrltError
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec

PartSpec = Resolved | Spec | str
_ATTRIBUTES = {"calibrator": "calibrator", "thresholds": "threshold_policy"}  # by specs key


def _as_numpy(values: Any) -> np.ndarray:
    """A tensor (on any device) or an array as a numpy array."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values)


def _fitting_loader(learn: Learner, dl: DataLoader | None) -> DataLoader:
    return learn.dls.valid if dl is None else dl


def require_labelled(learn: Learner, dl: DataLoader | None) -> None:
    """Refuse, without running the model, a fitting loader (``dl``, else the validation set)
    with no images or no labels: calibrators and thresholds are fitted on labels."""
    loader = _fitting_loader(learn, dl)
    if not len(loader.dataset):
        raise CxrltError(
            "Calibrators and threshold policies are fitted on labelled images, and the "
            "fitting loader has none: give learn a validation set, or pass dl=<labelled loader>."
        )
    item = loader.dataset[0]
    if not isinstance(item, tuple | list) or len(item) <= getattr(loader, "n_inp", 1):
        raise CxrltError(
            "Calibrators and threshold policies are fitted on labels, and the fitting loader "
            "yields images only (a test_dl?): pass dl=<a loader of labelled images>."
        )


def labelled_logits(learn: Learner, dl: DataLoader | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's raw logits over ``dl`` (default: the validation set) and its 0/1 targets."""
    require_labelled(learn, dl)
    if dl is None and not hasattr(learn.dls.valid, "new"):
        raise CxrltError(
            "These DataLoaders hold plain PyTorch loaders, which fastai's get_preds cannot "
            "re-use for the validation set: pass the labelled loader to fit on, dl=valid_dl."
        )
    logits, targets = learn.get_preds(dl=dl, act=noop)
    return _as_numpy(logits), _as_numpy(targets)


def training_prevalence(learn: Learner) -> np.ndarray | None:
    """Positive training images per class over all training images, when the loaders know
    them (``class_counts`` and ``n_train``, as cxr_dataloaders' do); else None."""
    counts = getattr(learn.dls, "class_counts", None)
    n_train = getattr(learn.dls, "n_train", None)
    if counts is None or not n_train:
        return None
    return np.asarray(counts, dtype=np.float64) / n_train


def discard_fitted(learn: Learner, *roles: str) -> None:
    """Forget the calibrator and/or threshold policy (``roles``: ``"calibrator"``,
    ``"thresholds"``), fitted on outputs the model or calibrator no longer gives."""
    for role in roles:
        setattr(learn, _ATTRIBUTES[role], None)
        getattr(learn, "specs", {}).pop(role, None)


def check_fitting(
    learn: Learner,
    dl: DataLoader | None,
    *,
    calibrator: PartSpec | None,
    thresholds: PartSpec | None,
) -> None:
    """What ``learn.post`` checks before its first step changes anything: the calibrator's
    and threshold policy's values and types, and labelled images to fit them on."""
    if calibrator is not None:
        _built("calibrators", calibrator, Calibrator)
    if thresholds is not None:
        _built("thresholds", thresholds, ThresholdPolicy)
    if calibrator is not None or thresholds is not None:
        require_labelled(learn, dl)


def _built(kind: str, spec: PartSpec, base: type) -> tuple[Resolved, Any]:
    resolved = spec if isinstance(spec, Resolved) else resolve(kind, spec)
    part = resolved.build()
    if not isinstance(part, base):
        raise CxrltError(
            f"{resolved.spec} builds a {type(part).__name__}, not a "
            f"cxrlt.calibration.{base.__name__}: fix the plugin's registered target."
        )
    return resolved, part


def _keep(learn: Learner, role: str, resolved: Resolved, part: Any) -> None:
    setattr(learn, _ATTRIBUTES[role], part)
    learn.specs = {**getattr(learn, "specs", {}), role: resolved}


@patch
def calibrate(self: Learner, calibrator: PartSpec, dl: DataLoader | None = None) -> Learner:
    """Fit ``calibrator`` (a name or spec, ``"platt:C=0.5"``) on the logits of ``dl`` (default:
    the validation set) and keep it as ``self.calibrator``; classes it cannot fit keep the
    loss's activation. Discards a threshold policy fitted before: it chose on other
    probabilities."""
    resolved, fitted = _built("calibrators", calibrator, Calibrator)
    logits, targets = labelled_logits(self, dl)
    fitted.fit(logits, targets, fallback=LossActivation(self.loss_func))
    discard_fitted(self, "thresholds")
    _keep(self, "calibrator", resolved, fitted)
    return self


@patch
def thresholds(
    self: Learner,
    policy: PartSpec,
    dl: DataLoader | None = None,
    *,
    train_prevalence: np.ndarray | None = None,
) -> Learner:
    """Fit the threshold ``policy`` on the probabilities of ``dl`` (default: the validation
    set), calibrated if ``self.calibrator`` is set, and keep it as ``self.threshold_policy``.
    ``train_prevalence`` (per class) defaults to :func:`training_prevalence`."""
    resolved, fitted = _built("thresholds", policy, ThresholdPolicy)
    logits, targets = labelled_logits(self, dl)
    if train_prevalence is None:
        train_prevalence = training_prevalence(self)
    probs = calibrated_probabilities(self, logits)
    fitted.fit(probs, targets, train_prevalence=train_prevalence)
    _keep(self, "thresholds", resolved, fitted)
    return self


def calibrated_probabilities(learn: Learner, logits: Any) -> np.ndarray:
    """Float64 probabilities of raw ``logits`` (tensor or array, images x classes): through
    ``learn.calibrator`` when fitted, else the loss's activation."""
    z = _as_numpy(logits)
    calibrator = getattr(learn, "calibrator", None)
    if calibrator is None:
        return LossActivation(learn.loss_func)(z)
    return calibrator.transform(z)


def predicted_labels(learn: Learner, probs: Any) -> np.ndarray:
    """Boolean predictions ``probs >= thresholds``: ``learn.threshold_policy``'s when fitted,
    else the default fixed threshold (0.5, as a run without a policy)."""
    policy = getattr(learn, "threshold_policy", None)
    return _as_numpy(probs) >= (DEFAULT_THRESHOLD if policy is None else policy.thresholds)
