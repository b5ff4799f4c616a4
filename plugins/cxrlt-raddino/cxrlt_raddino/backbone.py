"""RAD-DINO (microsoft/rad-dino: a DINOv2 ViT-B/14 trained on chest X-rays) as a cxrlt
backbone, through ``transformers``.

The network is a feature extractor: the CLS token is the pooled feature vector (what the model
card trains classifiers on), the patch tokens feed spatial heads. Its input is pinned as its
image processor has it: three channels (the greyscale X-ray repeated), the processor's mean and
standard deviation, 518 px by default; cxrlt's ``--size`` decides the resolution actually
used (DINOv2 interpolates its position embeddings; a multiple of 14 wastes no pixels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrlt import CxrltError, Preprocessing

HUB_ID = "microsoft/rad-dino"
HUB_URL = f"https://huggingface.co/{HUB_ID}"
INPUT_SIZE = 518
# microsoft/rad-dino's preprocessor_config.json (image_mean, image_std); a folder that has its
# own preprocessor_config.json is read instead.
MEAN, STD = (0.5307,) * 3, (0.2583,) * 3
LICENCE = (
    f"MIT in the current model card (MSRLA in earlier revisions); research use only, not for "
    f"clinical practice. See {HUB_URL}"
)


class RadDino(nn.Module):
    """A DINOv2 model's features: ``forward`` gives the CLS token (B, hidden_size),
    ``forward_features`` every token (B, 1 + N, hidden_size), the CLS token first (dropped by
    spatial heads through ``num_prefix_tokens``). Greyscale (B, 1, H, W) input, as cxrlt's
    backbone contract has it, is repeated to the three channels the patch embedding takes."""

    num_prefix_tokens = 1

    @property
    def explain_layer(self) -> nn.Module:
        """Grad-CAM's layer (cxrlt explain): the block before the last, whose patch tokens
        still get a gradient from the CLS token."""
        return self.model.encoder.layer[-2]

    def __init__(self, model: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.model = model
        self.num_features = int(model.config.hidden_size)
        self.preprocessing = preprocessing
        self.pretrained_cfg = {"hf_hub_id": HUB_ID, "license": LICENCE}

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        channels = self.model.config.num_channels
        return self.model(pixel_values=images.expand(-1, channels, -1, -1)).last_hidden_state

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)[:, 0]


def rad_dino(*, pretrained: bool = False, path: str | None = None) -> RadDino:
    """RAD-DINO (ViT-B/14, 768 features).

    ``pretrained`` loads the weights: from the folder ``path`` when given (``config.json`` and
    ``model.safetensors``, as ``hf download microsoft/rad-dino --local-dir DIR`` or
    ``save_pretrained`` write them), else from the Hugging Face hub (cached after the first
    download). Without ``pretrained`` the architecture is built with random weights, from
    ``path``'s config.json when given (a reloaded run brings its own weights).
    """
    folder = _folder(path) if path is not None else None
    source = str(folder) if folder is not None else HUB_ID
    try:
        model = _dinov2(source, folder, pretrained)
    except OSError as error:  # offline, or no such repository or files
        reason = (str(error).splitlines() or [""])[0][:160]
        raise CxrltError(
            f"Cannot load the RAD-DINO weights from {source!r} ({type(error).__name__}: "
            f"{reason}). This machine may be offline. Ways out: download the model once on a "
            f"machine with internet (`hf download {HUB_ID} --local-dir DIR`), copy DIR here and "
            f"use 'rad-dino:path=DIR'; or copy a filled Hugging Face cache (HF_HOME); or train "
            "from scratch with 'rad-dino:pretrained=False' (cxrlt run --no-pretrained)."
        ) from None
    return RadDino(model, _preprocessing(folder))


def _dinov2(source: str, folder: Path | None, pretrained: bool) -> nn.Module:
    from transformers import Dinov2Config, Dinov2Model
    from transformers.utils import cached_file

    if not pretrained:
        if folder is not None:
            return Dinov2Model(Dinov2Config.from_pretrained(folder))
        return Dinov2Model(Dinov2Config(image_size=INPUT_SIZE, patch_size=14))
    if torch.get_default_device().type == "meta":
        # cxrlt's check before a run builds on the meta device: fetch the weights, load nothing
        cached_file(source, "model.safetensors")
        return Dinov2Model(Dinov2Config.from_pretrained(source))
    return Dinov2Model.from_pretrained(source)


def _folder(path: str) -> Path:
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        what = "does not exist" if not folder.is_dir() else "has no config.json"
        raise CxrltError(
            f"The RAD-DINO folder {str(folder)!r} (path of the backbone 'rad-dino') {what}. "
            f"Give a folder holding config.json and model.safetensors: `hf download {HUB_ID} "
            "--local-dir DIR` writes one, as does save_pretrained of a transformers Dinov2Model."
        )
    return folder


def _preprocessing(folder: Path | None) -> Preprocessing:
    """The image processor's mean, std and crop size: the folder's own when it has a
    preprocessor_config.json, else microsoft/rad-dino's."""
    file = folder / "preprocessor_config.json" if folder is not None else None
    if file is None or not file.is_file():
        source = f"{HUB_ID} image processor"
        return Preprocessing(MEAN, STD, in_chans=3, input_size=INPUT_SIZE, source=source)
    try:
        config: dict[str, Any] = json.loads(file.read_text())
        crop = config.get("crop_size") or {}
        size = crop.get("height") if isinstance(crop, dict) else crop
        return Preprocessing(
            tuple(map(float, config.get("image_mean", MEAN))),
            tuple(map(float, config.get("image_std", STD))),
            in_chans=3,
            input_size=int(size) if size else None,
            source=str(file),
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise CxrltError(
            f"{file} is not a readable image processor config ({type(error).__name__}: "
            f"{error}): fix it, or delete it to use RAD-DINO's own pre-processing."
        ) from None
