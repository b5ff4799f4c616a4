"""Post-training steps: what happens to a trained model before it predicts.

A step has two parts. ``wrap`` changes the model's structure only (add per-class scales, wrap
for test-time augmentation), with no data, so prediction can repeat it from the step's spec;
``fit`` does the data-driven part (retrain the head, choose tau). Whatever ``fit`` learns lives
in the model's ``state_dict``, since a run directory keeps only weights and specs: prediction
builds the model, applies every step's ``wrap`` in order (:func:`rebuild`) and loads the
weights.

``learn.post("crt,tta,temp-scale,f1-per-class")`` runs the steps on a learner, then fits the
calibrator and the threshold policy (:mod:`cxrlt.calibration.learner`), the same string as
``--post`` (``import cxrlt.post`` adds the method). Every step's prerequisites are checked
(:meth:`PostStep.check`) before any step changes the model.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import torch
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastcore.basics import patch
from torch import nn

from cxrlt.calibration.learner import check_fitting, discard_fitted
from cxrlt.errors import CxrltError
from cxrlt.model.network import CXRClassifier, backbone_head_splitter
from cxrlt.post.retrain import main_training_callbacks
from cxrlt.registry import Resolved, registry, resolve
from cxrlt.spec import Spec, parse_spec, parse_specs

StepSpecs = str | Sequence[Resolved | Spec | str]
POST_KINDS = ("post", "calibrators", "thresholds")  # the order --post takes them in


class PostStep:
    """Base of post-training steps; every part defaults to doing nothing.

    ``check`` refuses a learner the step cannot be fitted on; ``learn.post`` calls it for
    every step before the first one changes anything, so a refused step leaves the model
    exactly as it was. ``wrap`` and ``fit`` may then assume what ``check`` verified.

    A step whose ``fit`` chooses something by a validation score (tau-norm's tau) sets
    ``chooses_on_validation`` and scores only the rows in ``learn.choice_rows`` (a boolean
    mask over the validation split, or None for all): a run then fits it once per validation
    half, so that no reported image takes part in the choice.
    """

    chooses_on_validation: bool = False

    def check(self, learn: Learner) -> None:
        """Raise a :class:`CxrltError` if ``fit`` cannot succeed on ``learn``; change nothing."""

    def wrap(self, model: nn.Module, classes: Sequence[str]) -> nn.Module:
        """The model with this step's structure: deterministic, no data, no learned values."""
        return model

    def fit(self, learn: Learner) -> None:
        """Learn this step's values from ``learn``'s data into ``learn.model``'s state_dict."""

    def choices(self) -> dict[str, Any]:
        """What ``fit`` chose (JSON-ready), for the run's config: e.g. tau-norm's tau."""
        return {}


def classifier_of(model: nn.Module) -> CXRClassifier:
    """The :class:`CXRClassifier` inside a model that earlier steps may have wrapped."""
    for module in model.modules():
        if isinstance(module, CXRClassifier):
            return module
    raise CxrltError(
        f"Post-training steps work on a cxrlt CXRClassifier, and {type(model).__name__} holds "
        "none: build the learner with cxr_learner."
    )


def learner_classes(learn: Learner) -> tuple[str, ...]:
    """The learner's class names, from any fastai DataLoaders (``classes`` or ``vocab``)."""
    from cxrlt.data.loaders import class_names

    return class_names(learn.dls)


def require_sigmoid(learn: Learner, what: str) -> None:
    """Refuse a loss whose probabilities are not sigmoid(logit): ``what`` computes them so."""
    activation = getattr(learn.loss_func, "activation", torch.sigmoid)
    logits = torch.linspace(-8, 8, 17).unsqueeze(1).repeat(1, len(learner_classes(learn)))
    if not torch.allclose(activation(logits).cpu(), torch.sigmoid(logits)):
        raise CxrltError(
            f"{what} takes sigmoid(logit) as the probability, but the loss "
            f"{type(learn.loss_func).__name__} turns logits into probabilities differently "
            "(e.g. ldam's sigmoid(s * z)), so its output would be wrong: use another loss."
        )


def resolve_steps(steps: StepSpecs) -> list[Resolved]:
    """Post steps from a comma list (``"crt:epochs=5,tta"``; empty: none) or a list of specs."""
    if isinstance(steps, str):
        steps = parse_specs(steps) if steps.strip() else []
    return [step if isinstance(step, Resolved) else resolve("post", step) for step in steps]


def split_post(
    post: StepSpecs,
) -> tuple[list[Resolved], Resolved | None, Resolved | None]:
    """``--post`` and ``learn.post``: post-training steps in order, then at most one
    calibrator, then at most one threshold policy (``crt,tta,temp-scale,f1-per-class``)."""
    specs = (parse_specs(post) if post.strip() else []) if isinstance(post, str) else post
    found: dict[str, list[Resolved]] = {kind: [] for kind in POST_KINDS}
    last = 0
    for spec in specs:
        resolved = spec if isinstance(spec, Resolved) else _resolve_post(_as_spec(spec))
        kind = resolved.entry.kind
        if POST_KINDS.index(kind) < last or (kind != "post" and found[kind]):
            raise CxrltError(
                f"--post {post!r}: give the post-training steps first, then at most one "
                f"calibrator, then at most one threshold policy ({resolved.entry.name!r} is out "
                "of place)."
            )
        last = POST_KINDS.index(kind)
        found[kind].append(resolved)
    calibrator, thresholds = (found[kind][0] if found[kind] else None for kind in POST_KINDS[1:])
    return found["post"], calibrator, thresholds


def _as_spec(spec: Spec | str) -> Spec:
    return spec if isinstance(spec, Spec) else parse_spec(spec)


def _resolve_post(spec: Spec) -> Resolved:
    """``spec`` resolved as the first of :data:`POST_KINDS` that has its name."""
    kinds = [kind for kind in POST_KINDS if spec.name in registry(kind)]
    if not kinds:
        names = [entry.name for kind in POST_KINDS for entry in registry(kind).entries]
        close = difflib.get_close_matches(spec.name, names, n=3, cutoff=0.6)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise CxrltError(
            f"--post {spec.name!r} is no post-training step, calibrator or threshold "
            f"policy.{hint} See `cxrlt list post`, `cxrlt list calibrators`, "
            "`cxrlt list thresholds`."
        )
    return resolve(kinds[0], spec)


def _wrap(step: PostStep, model: nn.Module, classes: Sequence[str]) -> nn.Module:
    """``step.wrap``, with anything it adds put on the model's device."""
    device = next(model.parameters()).device
    return step.wrap(model, classes).to(device)


def rebuild(model: nn.Module, specs: StepSpecs, classes: Sequence[str]) -> nn.Module:
    """Prediction time: the structure the post steps gave ``model``, ready for its saved
    state_dict (the steps' ``fit`` is not repeated: what it learned is in the weights)."""
    for spec in resolve_steps(specs):
        model = _wrap(spec.build(), model, classes)
    return model


def post_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Backbone and head parameter groups of a wrapped model; parameters the wrappers add
    (e.g. LWS scales) join the head's group."""
    groups = backbone_head_splitter(classifier_of(model))
    seen = {id(p) for group in groups for p in group}
    groups[-1] += [p for p in model.parameters() if id(p) not in seen]
    return groups


@patch
def post(self: Learner, steps: StepSpecs, dl: DataLoader | None = None) -> Learner:
    """Run post-training steps in order (wrap the model, then fit the step), then fit the
    calibrator and the threshold policy on ``dl`` (default: the validation set), as
    ``learn.calibrate`` and ``learn.thresholds`` do. ``steps`` is what ``--post`` takes.

    Every name and parameter, and every step's :meth:`PostStep.check`, is checked before the
    first step changes anything. During each ``fit`` the callbacks of the main training
    (deferred re-weighting, checkpoints, weight averaging, run log: they declare
    ``during_post_training = False``) are set aside; the others, which shape how a batch is
    computed (mixed precision, gradient clipping, a plugin's), run. Run the
    steps after choosing the epoch to keep: wrapped models have other state_dict keys. The
    resolved specs are appended to ``self.post_steps`` for the run directory and
    :func:`rebuild`, and what each chose (:meth:`PostStep.choices`) to ``self.post_choices``.
    A step changes the model, so it discards a calibrator and thresholds fitted before it.
    """
    resolved, calibrator, thresholds = split_post(steps)
    built = [spec.build() for spec in resolved]
    for step in built:
        step.check(self)
    check_fitting(self, dl, calibrator=calibrator, thresholds=thresholds)
    if self.splitter is backbone_head_splitter:
        self.splitter = post_splitter
    if built:
        discard_fitted(self, "calibrator", "thresholds")
    for step in built:
        self.model = _wrap(step, self.model, learner_classes(self))
        with self.removed_cbs(main_training_callbacks(self)):
            step.fit(self)
    self.post_steps = [*getattr(self, "post_steps", []), *resolved]
    self.post_choices = [
        *getattr(self, "post_choices", []),
        *(
            {"step": str(spec.spec), **step.choices()}
            for spec, step in zip(resolved, built, strict=True)
        ),
    ]
    if calibrator is not None:
        self.calibrate(calibrator, dl)
    if thresholds is not None:
        self.thresholds(thresholds, dl)
    return self
