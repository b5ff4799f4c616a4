"""The classifier network: input pre-processing, a backbone and a head."""

from __future__ import annotations

import torch
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.model.preprocessing import Normalise, Preprocessing, preprocessing_of


class CXRClassifier(nn.Module):
    """Images in [0, 1], shape (B, C, H, W), to one logit per class.

    Pre-processing lives in the model, not the loader, so every loader and every backbone
    agree on it and the loader can ship compact uint8 batches. ``preprocessing`` pins it (a
    rebuilt run passes the record its config holds); by default it is read from the backbone.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, preprocessing: Preprocessing | None = None
    ) -> None:
        super().__init__()
        if getattr(head, "spatial", False) and not hasattr(backbone, "forward_features"):
            raise CxrltError(
                f"The head {type(head).__name__} needs spatial features, but the backbone "
                f"{type(backbone).__name__} has no forward_features method. Use a timm backbone, "
                "or a head on pooled features such as 'linear' or 'cosine'."
            )
        self.backbone = backbone
        self.head = head
        self.normalise = Normalise(preprocessing or preprocessing_of(backbone))

    @property
    def preprocessing(self) -> Preprocessing:
        """The input pre-processing the backbone gets, as the run's config records it."""
        return self.normalise.preprocessing

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = self.normalise(images)
        spatial = getattr(self.head, "spatial", False)
        features = self.tokens(images) if spatial else self.backbone(images)
        # The head in float32 even under mixed precision: bf16 logits keep 8 significant
        # bits, and the ties they create change AP.
        with torch.autocast(images.device.type, enabled=False):
            return self.head(features.float())

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Unpooled backbone features as (B, N, C) tokens, for heads with ``spatial = True``.

        timm's ``forward_features`` gives (B, C, H, W) maps, (B, H, W, C) where the model's
        ``output_fmt`` is NHWC (Swin), or (B, N, C) tokens (ViT), whose class and register
        tokens are dropped: the heads attend over image positions.
        """
        features = self.backbone.forward_features(images)
        if features.ndim != 4:
            return features[:, getattr(self.backbone, "num_prefix_tokens", 0) :]
        if getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":
            return features.flatten(1, 2)
        return features.flatten(2).transpose(1, 2)


def backbone_head_splitter(model: CXRClassifier) -> list[list[nn.Parameter]]:
    """Parameter groups for fastai's discriminative learning rates: backbone, then head."""
    return [list(model.backbone.parameters()), list(model.head.parameters())]
