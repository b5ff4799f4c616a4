"""``cxr_learner``: a fastai Learner assembled from registry names."""

from __future__ import annotations

from typing import Any

import fastai.callback.schedule  # noqa: F401 - adds Learner.fit_one_cycle
from fastai.learner import Learner
from fastai.metrics import AccumMetric
from fastcore.basics import listify

from cxrlt.data.loaders import CXRDataLoaders
from cxrlt.evaluation.metrics import macro_average_precision
from cxrlt.head_choice import choose_head
from cxrlt.model.network import CXRClassifier, backbone_head_splitter
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec, parse_spec
from cxrlt.training.optim import fused_adam
from cxrlt.training.progress import EpochLines, stdout_is_terminal


def _to_numpy_map(logits, targets) -> float:  # noqa: ANN001 - fastai passes tensors
    return macro_average_precision(logits.float().cpu().numpy(), targets.cpu().numpy())


def macro_ap_metric() -> AccumMetric:
    """Validation mAP from raw logits: ranking metrics need no activation."""
    return AccumMetric(_to_numpy_map, flatten=False, name="mAP")


def head_input_width(backbone: Any, *, spatial: bool) -> int:
    """Channels a head receives: the feature map's for spatial heads, the pooled vector's
    otherwise (timm's ``head_hidden_size``, wider than the map in MobileNetV3)."""
    if spatial:
        return backbone.num_features
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


def loss_callbacks(loss_func: Any) -> list:
    """The callbacks a loss asks for (deferred re-weighting, ...); none for plain modules."""
    return list(getattr(loss_func, "callbacks", list)())


def build_model(arch: Resolved, head: Resolved, n_classes: int) -> CXRClassifier:
    """Backbone and head from resolved specs, for greyscale input."""
    backbone = arch.build(in_chans=1)
    in_features = head_input_width(backbone, spatial=getattr(head.entry.load(), "spatial", False))
    return CXRClassifier(backbone, head.build(in_features=in_features, n_classes=n_classes))


def cxr_learner(
    dls: CXRDataLoaders,
    arch: str = "resnet18",
    loss: str = "bce",
    *,
    head: str | None = None,
    pretrained: bool | None = None,
    **learner_kwargs: Any,
) -> Learner:
    """A Learner whose model, loss and parameter groups come from registry names.

    ``head`` None takes the head the loss declares, else linear, as ``cxrlt run`` does
    (:func:`cxrlt.head_choice.choose_head`). ``pretrained`` overrides the backbone spec's own
    setting when given. The resolved specs are kept in ``learn.specs`` so a run directory
    can record them. The optimiser is fastai's
    Adam stepped by torch's fused kernel (:mod:`cxrlt.training.optim`) unless ``opt_func``
    says otherwise. When stdout is no terminal, progress is one line per epoch
    (:mod:`cxrlt.training.progress`) instead of fastai's bars.
    """
    arch_spec = parse_spec(arch)
    if pretrained is not None:
        arch_spec = Spec(arch_spec.name, {**arch_spec.params, "pretrained": pretrained})
    loss_spec = resolve("losses", loss)
    specs: dict[str, Resolved] = {
        "arch": resolve("backbones", arch_spec),
        "head": choose_head(loss_spec, head)[0],
        "loss": loss_spec,
    }
    model = build_model(specs["arch"], specs["head"], len(dls.classes))
    loss_func = specs["loss"].build(class_counts=dls.class_counts.tolist(), n_items=dls.n_train)
    learner_kwargs.setdefault("metrics", [macro_ap_metric()])
    learner_kwargs.setdefault("opt_func", fused_adam)
    # first of the given callbacks, so that it holds the logger before the run log chains to it
    lines = [] if stdout_is_terminal() else [EpochLines()]
    learner_kwargs["cbs"] = [
        *lines,
        *loss_callbacks(loss_func),
        *listify(learner_kwargs.get("cbs")),
    ]
    learn = Learner(
        dls, model, loss_func=loss_func, splitter=backbone_head_splitter, **learner_kwargs
    )
    if lines:
        learn.remove_cb(learn.progress)  # fastai's bars, which the lines replace
    learn.specs = {**dls.specs, **specs}
    return learn
