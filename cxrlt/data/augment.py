"""Training augmentations that suit chest X-rays, applied to whole batches on the device.

Small affine changes (rotation, scale, shift) and brightness/contrast jitter mimic patient
positioning and exposure. Horizontal flips are off by default: the heart's side is anatomy,
and a flipped film is a different (rare) finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BatchAugment:
    """Random per-image affine and intensity changes for a (B, C, H, W) batch in [0, 1]."""

    rotate: float = 7.0  # degrees, either way
    scale: float = 0.08  # relative, either way
    shift: float = 0.05  # fraction of the image, either way
    brightness: float = 0.08
    contrast: float = 0.1
    flip: bool = False

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]

        def uniform(spread: float) -> torch.Tensor:
            noise = torch.rand(n, generator=generator, device=generator.device)
            return ((noise * 2 - 1) * spread).to(images.device)

        angle = uniform(math.radians(self.rotate))
        scale = 1 + uniform(self.scale)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        mirror = torch.ones(n, device=images.device)
        if self.flip:
            flips = torch.rand(n, generator=generator, device=generator.device) < 0.5
            mirror = torch.where(flips.to(images.device), -1.0, 1.0)
        theta = torch.stack(
            [
                torch.stack([cos * mirror, -sin, uniform(2 * self.shift)], dim=1),
                torch.stack([sin * mirror, cos, uniform(2 * self.shift)], dim=1),
            ],
            dim=1,
        ).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        mean = moved.mean(dim=(1, 2, 3), keepdim=True)
        contrast = (1 + uniform(self.contrast)).view(n, 1, 1, 1).to(images.dtype)
        brightness = uniform(self.brightness).view(n, 1, 1, 1).to(images.dtype)
        return ((moved - mean) * contrast + mean + brightness).clamp_(0, 1)
