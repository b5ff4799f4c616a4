"""The plugin's classifier head: backbone features in, one logit per class out."""

from __future__ import annotations

import torch
from torch import nn


class MyHead(nn.Module):
    """Two linear layers with a ReLU between them.

    cxrlt builds a head with ``in_features`` (the backbone's width) and ``n_classes``, and
    gives it pooled (B, in_features) features. A head that wants one token per position of
    the feature map instead, (B, N, in_features), sets the class attribute ``spatial = True``.
    """

    def __init__(self, in_features: int, n_classes: int, *, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(features)))
