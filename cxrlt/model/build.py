"""A classifier from resolved backbone and head specs: what training, post-training steps and
prediction all build, so that a run's weights load back into the same structure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cxrlt.model.network import CXRClassifier

if TYPE_CHECKING:
    from cxrlt.registry import Resolved


def head_input_width(backbone: Any, *, spatial: bool) -> int:
    """Channels a head receives: the feature map's for spatial heads, the pooled vector's
    otherwise (timm's ``head_hidden_size``, wider than the map in MobileNetV3)."""
    if spatial:
        return backbone.num_features
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


def build_model(arch: Resolved, head: Resolved, n_classes: int) -> CXRClassifier:
    """Backbone and head from resolved specs, for greyscale input."""
    backbone = arch.build(in_chans=1)
    in_features = head_input_width(backbone, spatial=getattr(head.entry.load(), "spatial", False))
    return CXRClassifier(backbone, head.build(in_features=in_features, n_classes=n_classes))
