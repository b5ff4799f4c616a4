"""Post-training steps: what happens to a trained model before it predicts.

A step has two parts. ``wrap`` changes the model's structure only (add per-class scales, wrap
for test-time augmentation), with no data, so prediction can repeat it from the step's spec;
``fit`` does the data-driven part (retrain the head, choose tau). Whatever ``fit`` learns lives
in the model's ``state_dict``, since a run directory keeps only weights and specs: prediction
builds the model, applies every step's ``wrap`` in order (:func:`rebuild`) and loads the
weights.

``learn.post("crt,tta")`` runs the steps on a learner (``import cxrlt.post`` adds the method).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.core import Callback, TrainEvalCallback
from fastai.callback.fp16 import MixedPrecision
from fastai.callback.progress import ProgressCallback
from fastai.callback.training import GradientClip
from fastai.learner import CastToTensor, Learner, Recorder
from fastcore.basics import patch
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.model.network import CXRClassifier, backbone_head_splitter
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec, parse_specs
from cxrlt.training.guards import StopOnNonFiniteLoss

StepSpecs = str | Sequence[Resolved | Spec | str]

# Callbacks that shape how a batch is computed. The others act on the main training's epochs
# (deferred re-weighting, checkpoints, weight averaging, the run log) and sit out post steps.
_STEP_CALLBACKS = (
    TrainEvalCallback,
    Recorder,
    CastToTensor,
    ProgressCallback,
    MixedPrecision,
    ChannelsLast,
    GradientClip,
    StopOnNonFiniteLoss,
)


class PostStep:
    """Base of post-training steps; both parts default to doing nothing.

    A step whose ``fit`` chooses something by a validation score (tau-norm's tau) sets
    ``chooses_on_validation`` and scores only the rows in ``learn.choice_rows`` (a boolean
    mask over the validation split, or None for all): a run then fits it once per validation
    half, so that no reported image takes part in the choice.
    """

    chooses_on_validation: bool = False

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


def require_sigmoid(learn: Learner, what: str) -> None:
    """Refuse a loss whose probabilities are not sigmoid(logit): ``what`` computes them so."""
    activation = getattr(learn.loss_func, "activation", torch.sigmoid)
    logits = torch.linspace(-8, 8, 17).unsqueeze(1).repeat(1, len(learn.dls.classes))
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


def _main_training_callbacks(learn: Learner) -> list[Callback]:
    return [cb for cb in learn.cbs if not isinstance(cb, _STEP_CALLBACKS)]


@patch
def post(self: Learner, steps: StepSpecs) -> Learner:
    """Run post-training steps in order: wrap the model, then fit the step.

    During each ``fit`` only the callbacks that shape a batch's computation run (mixed
    precision, gradient clipping, ...); those of the main training (deferred re-weighting,
    checkpoints, weight averaging, run log) are set aside. Run the steps after choosing the
    epoch to keep: wrapped models have other state_dict keys. The resolved specs are appended
    to ``self.post_steps`` for the run directory and :func:`rebuild`, and what each chose
    (:meth:`PostStep.choices`) to ``self.post_choices``.
    """
    resolved = resolve_steps(steps)
    built = [spec.build() for spec in resolved]  # every parameter checked before any work
    if self.splitter is backbone_head_splitter:
        self.splitter = post_splitter
    for step in built:
        self.model = _wrap(step, self.model, self.dls.classes)
        with self.removed_cbs(_main_training_callbacks(self)):
            step.fit(self)
    self.post_steps = [*getattr(self, "post_steps", []), *resolved]
    self.post_choices = [
        *getattr(self, "post_choices", []),
        *(
            {"step": str(spec.spec), **step.choices()}
            for spec, step in zip(resolved, built, strict=True)
        ),
    ]
    return self
