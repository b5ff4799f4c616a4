"""Poly-1 loss for multi-label targets.

PolyLoss (Leng et al., ICLR 2022) expands cross-entropy in powers of (1 - p_t); Poly-1 adds
epsilon times the first term to BCE: L = BCE(z, y) + epsilon * (1 - p_t), with
p_t = p for positives and 1 - p for negatives. epsilon = 0 gives plain BCE.
"""

from __future__ import annotations

import torch

from cxrlt.training.losses import BCELoss


class Poly1Loss(BCELoss):
    """BCE with the first polynomial term re-weighted by ``epsilon``."""

    def __init__(self, *, epsilon: float = 1.0) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        probs = torch.sigmoid(logits)
        p_t = targets * probs + (1 - targets) * (1 - probs)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, targets, reduction="none"
        )
        return (bce + self.epsilon * (1 - p_t)).mean()
