"""Multi-label losses as fastai expects them: a module with ``activation`` and ``decodes``.

``activation`` turns logits into probabilities the way the loss was trained, so
``Learner.get_preds`` and every calibration step see the same probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, the unweighted baseline of every CXR-LT study."""

    def __init__(self) -> None:  # an explicit signature: no parameters to accept
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def decodes(self, probs: torch.Tensor) -> torch.Tensor:
        return probs > 0.5
