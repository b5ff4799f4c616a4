"""Test-time augmentation: average the model's outputs over a few views of each image.

The views are the image itself, its horizontal mirror (``flip``) and each of ``scales``
(resized, then centre-cropped or padded with black back to the input size). Each view is a
separate forward pass, so prediction costs one pass per view.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from fastai.learner import Learner
from torch import nn

from cxrlt.post import PostStep, require_sigmoid


def rescale(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Images resized by ``scale`` about their centre, cropped or black-padded to their size."""
    height, width = images.shape[-2:]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = F.interpolate(
        images, size=size, mode="bilinear", align_corners=False, antialias=scale < 1
    )
    dh, dw = height - size[0], width - size[1]  # negative padding crops
    return F.pad(resized, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def merge_logits(logits: torch.Tensor, merge: str) -> torch.Tensor:
    """Merge (views, B, C) logits: their mean (``logit``), or (``prob``) the logit of the mean
    sigmoid probability, log(mean p) - log(mean (1 - p)), computed in log space."""
    if merge == "logit":
        return logits.mean(dim=0)
    return torch.logsumexp(F.logsigmoid(logits), 0) - torch.logsumexp(F.logsigmoid(-logits), 0)


class TTAModel(nn.Module):
    """``model`` averaged over views of its input; see :func:`merge_logits`."""

    def __init__(
        self, model: nn.Module, *, flip: bool, scales: Sequence[float], merge: str
    ) -> None:
        super().__init__()
        self.model, self.flip, self.scales, self.merge = model, flip, tuple(scales), merge

    def views(self, images: torch.Tensor) -> Iterator[torch.Tensor]:
        yield images
        if self.flip:
            yield images.flip(-1)
        for scale in self.scales:
            yield rescale(images, scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([self.model(view) for view in self.views(images)])
        return merge_logits(logits, self.merge)


class TestTimeAugmentation(PostStep):
    """Wrap the model to average its logits over views (``merge="logit"``), or its sigmoid
    probabilities (``merge="prob"``: the output is then the logit whose sigmoid is the mean
    probability, so every later step still receives logits).

    ``flip`` is off by default, unlike many TTA recipes: the heart's side is anatomy, and
    cxrlt's training augmentation does not flip either, so a mirrored film is one the model
    has not learnt. Turn it on for a model trained with flips.
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(
        self,
        *,
        flip: bool = False,
        scales: tuple[float, ...] = (0.9, 1.1),
        merge: Literal["logit", "prob"] = "logit",
    ) -> None:
        if any(scale <= 0 for scale in scales):
            raise ValueError(f"scales must be positive, got {list(scales)}")
        self.flip, self.scales, self.merge = flip, [float(s) for s in scales], merge

    def wrap(self, model: nn.Module, classes: Sequence[str]) -> nn.Module:
        return TTAModel(model, flip=self.flip, scales=self.scales, merge=self.merge)

    def check(self, learn: Learner) -> None:
        if self.merge == "prob":
            require_sigmoid(learn, "tta:merge=prob")
