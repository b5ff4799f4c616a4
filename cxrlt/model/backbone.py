"""timm backbones for greyscale chest X-rays: any timm name, a hub model (``hf-hub:``), a
local folder in timm's format (``local-dir:``), with pretrained weights from the hub or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from cxrlt.errors import CxrltError

_TIMM_BACKBONE = f"{__name__}:timm_backbone"
_HUB, _LOCAL = ("hf-hub:", "hf_hub:"), "local-dir:"


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
    keeps the benefit of ImageNet weights. ``model_name`` is a timm name, ``hf-hub:REPO``
    or ``local-dir:FOLDER`` (timm's config.json and weights: the architecture and its input
    pre-processing come from it); ``weights`` loads a local file instead of the hub.
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
    if model_name.startswith(_LOCAL):
        check_local_dir(model_name)
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        # a hub model's architecture comes from the hub even without its weights
        if not (pretrained or model_name.startswith(_HUB)):
            raise
        what = "pretrained weights for" if pretrained else "the architecture of"
        raise CxrltError(
            f"Could not load {what} {model_name!r} ({type(error).__name__}: "
            f"{_first_line(error)}). "
            "This machine may be offline or the model may not exist. Ways out: "
            + _fixes(model_name)
        ) from error


def _first_line(error: Exception) -> str:
    line = (str(error).splitlines() or [""])[0]
    return line if len(line) <= 160 else line[:157] + "..."


def _fixes(model_name: str) -> str:
    if model_name.startswith(_HUB):
        repo = model_name.split(":", 1)[1]
        return (
            f"download the folder once on a machine with internet (`hf download {repo} "
            f"--local-dir DIR`) and give 'local-dir:DIR'; or fill the Hugging Face cache "
            f"there and copy it here (HF_HOME); or pick a timm name ('cxrlt list backbones')."
        )
    return (
        f"use '{model_name}:pretrained=False' (--no-pretrained), or a local file with "
        f"'{model_name}:weights=PATH', or a local folder in timm's format with 'local-dir:DIR'."
    )


def check_local_dir(model_name: str) -> None:
    """A ``local-dir:`` folder holds timm's ``config.json`` (its architecture and input
    pre-processing) beside its weights: say which is missing before timm does."""
    folder = Path(model_name[len(_LOCAL) :]).expanduser()
    if not (folder / "config.json").is_file():
        what = "does not exist" if not folder.is_dir() else "has no config.json"
        raise CxrltError(
            f"The backbone folder {str(folder)!r} ({model_name!r}) {what}. Give a folder in "
            "timm's format (config.json with the architecture and pretrained_cfg, beside "
            "model.safetensors or pytorch_model.bin), as `hf download timm/NAME --local-dir "
            "DIR` or timm's save_for_hf write it; or use a timm name with 'NAME:weights=FILE'."
        )


def timm_model(name: str) -> dict[str, Any] | None:
    """Any timm model name, ``hf-hub:`` id or ``local-dir:`` folder is a backbone: the
    built-in backbones' name source claims it with this."""
    import timm

    if name.startswith(_HUB):
        summary = "timm model from the Hugging Face hub"
    elif name.startswith(_LOCAL):
        summary = "timm model from a local folder"
    elif timm.is_model(name):
        summary = "timm model"
    else:
        return None
    return {"target": _TIMM_BACKBONE, "summary": summary, "bound": {"model_name": name}}


def timm_model_names() -> list[str]:
    """timm's model names, suggested for a misspelt backbone."""
    import timm

    return timm.list_models()


def input_and_licence(name: str) -> list[str]:
    """What ``cxrlt show`` says of a backbone beyond its parameters: the input pre-processing
    pinned for it and its weights' licence, read from the backbone built with its defaults on
    the meta device (no memory, no weights; a hub model's config is fetched)."""
    from cxrlt.model.build import backbone_on_meta
    from cxrlt.model.preprocessing import preprocessing_of
    from cxrlt.registry import resolve

    try:
        backbone = backbone_on_meta(resolve("backbones", name, pretrained=False))
    except CxrltError as error:
        return [f"input: read when the backbone is built ({error})"]
    licence = (getattr(backbone, "pretrained_cfg", None) or {}).get("license")
    lines = [f"input: {preprocessing_of(backbone).describe()}"]
    return [*lines, f"licence: {licence}"] if licence else lines
