"""A classifier from resolved backbone and head specs: what training, post-training steps and
prediction all build, so that a run's weights load back into the same structure."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from cxrlt.model.network import CXRClassifier
from cxrlt.model.preprocessing import preprocessing_of

if TYPE_CHECKING:
    from cxrlt.model.preprocessing import Preprocessing
    from cxrlt.registry import Resolved


def head_input_width(backbone: Any, *, spatial: bool) -> int:
    """Channels a head receives: the feature map's for spatial heads, the pooled vector's
    otherwise (timm's ``head_hidden_size``, wider than the map in MobileNetV3)."""
    if spatial:
        return backbone.num_features
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


def build_model(
    arch: Resolved, head: Resolved, n_classes: int, preprocessing: Preprocessing | None = None
) -> CXRClassifier:
    """Backbone and head from resolved specs, for greyscale input; ``preprocessing`` pins the
    input pre-processing (a rebuilt run's), else the backbone's own is read."""
    backbone = arch.build(in_chans=1)
    in_features = head_input_width(backbone, spatial=getattr(head.entry.load(), "spatial", False))
    head_module = head.build(in_features=in_features, n_classes=n_classes)
    return CXRClassifier(backbone, head_module, preprocessing)


def backbone_on_meta(arch: Resolved) -> Any:
    """The backbone built on the meta device: no memory allocated, its declarations (input
    pre-processing, licence) readable; pretrained weights are fetched if the spec asks."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*meta parameter.*")
        with torch.device("meta"):
            return arch.build(in_chans=1)


def input_preprocessing(arch: Resolved) -> Preprocessing:
    """The input pre-processing a model of ``arch`` gets: what a run's config records, so that
    prediction rebuilds the model with it. Read without pretrained weights (it does not
    depend on them), so no weights are fetched or read for it."""
    from cxrlt.registry import resolve

    return preprocessing_of(backbone_on_meta(resolve("backbones", arch, pretrained=False)))
