"""The plugin's backbone: images in, one feature vector per image out."""

from __future__ import annotations

import torch
from torch import nn


class MyBackbone(nn.Module):
    """A small convolutional network: ``depth`` blocks of a 3x3 convolution and a ReLU (each
    block after the first halves the resolution), then the mean over positions.

    cxrlt builds it with ``in_chans`` (1: greyscale) and sizes the head from
    ``num_features``, the width of what ``forward`` returns. ``forward_features`` gives the
    unpooled map, for heads that attend over positions (``csra``, ``ml-decoder``). It declares
    no ``pretrained``: with no weights to load, cxrlt's ``--pretrained`` does not reach it.
    """

    def __init__(self, *, in_chans: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        layers: list[nn.Module] = []
        for block in range(depth):
            channels = in_chans if block == 0 else width
            stride = 1 if block == 0 else 2
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.num_features = width

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) images to a (B, width, H', W') feature map."""
        return self.features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images).mean(dim=(2, 3))
