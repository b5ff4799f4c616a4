"""The classifier network: input normalisation, a backbone and a head."""

from __future__ import annotations

from statistics import fmean

import torch
from torch import nn

# Greyscale stand-ins for ImageNet statistics when a backbone carries none.
_DEFAULT_MEAN, _DEFAULT_STD = 0.449, 0.226


class CXRClassifier(nn.Module):
    """Images in [0, 1], shape (B, C, H, W), to one logit per class.

    Normalisation lives in the model, not the loader, so every loader and every
    backbone agree on it and the loader can ship compact uint8 batches.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        cfg = getattr(backbone, "pretrained_cfg", None) or {}
        mean = fmean(cfg.get("mean") or (_DEFAULT_MEAN,))
        std = fmean(cfg.get("std") or (_DEFAULT_STD,))
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone((images - self.mean) / self.std))


def backbone_head_splitter(model: CXRClassifier) -> list[list[nn.Parameter]]:
    """Parameter groups for fastai's discriminative learning rates: backbone, then head."""
    return [list(model.backbone.parameters()), list(model.head.parameters())]
