"""Classifier heads: pooled features in, one logit per class out."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """A linear classifier, the head that classifier re-training re-initialises."""

    def __init__(self, in_features: int, n_classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))
