"""timm backbones for greyscale chest X-rays, with pretrained weights from the hub or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from cxrlt.errors import CxrltError

_TIMM_BACKBONE = f"{__name__}:timm_backbone"


def timm_backbone(
    model_name: str,
    *,
    in_chans: int = 1,
    pretrained: bool = False,
    weights: str | None = None,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """A timm model without its classifier (``num_classes=0``), returning pooled features.

    timm folds pretrained RGB stem weights into ``in_chans`` channels, so greyscale input
    keeps the benefit of ImageNet weights. ``weights`` loads a local file instead of the hub.
    """
    import timm

    kwargs: dict = {"in_chans": in_chans, "num_classes": 0}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    if weights is not None:
        if not Path(weights).is_file():
            raise CxrltError(
                f"Weights file {weights!r} for backbone {model_name!r} does not exist: "
                "give the path of a .safetensors, .pth or .bin file."
            )
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
        pretrained = True
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        if not pretrained:
            raise
        raise CxrltError(
            f"Could not load pretrained weights for {model_name!r} ({type(error).__name__}: "
            f"{error}). This machine may be offline or the weights may not exist: use "
            f"'{model_name}:pretrained=False' (--no-pretrained), or a local file with "
            f"'{model_name}:weights=PATH'."
        ) from error


def timm_model(name: str) -> dict[str, Any] | None:
    """Any timm model name (or ``hf-hub:`` id) is a backbone: the built-in backbones' name
    source claims it with this."""
    import timm

    if not (name.startswith(("hf-hub:", "hf_hub:")) or timm.is_model(name)):
        return None
    return {"target": _TIMM_BACKBONE, "summary": "timm model", "bound": {"model_name": name}}


def timm_model_names() -> list[str]:
    """timm's model names, suggested for a misspelt backbone."""
    import timm

    return timm.list_models()
