"""Classifier heads: backbone features in, one logit per class out.

Pooled heads take (B, C) vectors. Heads with ``spatial = True`` take (B, N, C) tokens, one per
feature-map position (or ViT token); :class:`cxrlt.model.network.CXRClassifier` supplies them.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cxrlt.errors import CxrltError


class LinearHead(nn.Module):
    """A linear classifier, the head that classifier re-training re-initialises."""

    def __init__(self, in_features: int, n_classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))


class CosineHead(nn.Module):
    """Normalised classifier: logit_c = scale * cos(x, w_c), no bias.

    Made for ``ldam``: Cao et al., NeurIPS 2019 (LDAM) train a normalised classifier, so their
    margins (up to 0.5) are on the scale of a cosine. cxrlt's LDAM multiplies logits by its own
    ``s``, so keep ``scale=1`` with ``ldam``; with other losses use e.g. ``scale=16..30``, since
    logits within [-1, 1] cannot reach confident probabilities.
    """

    def __init__(self, in_features: int, n_classes: int, *, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.randn(n_classes, in_features) * in_features**-0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(features, dim=-1), F.normalize(self.weight, dim=-1))
        return self.scale * cosine


# Zhu & Wu's temperatures per number of heads; inf means max over positions.
_CSRA_TEMPERATURES = {
    2: (1.0, math.inf),
    4: (1.0, 2.0, 4.0, math.inf),
    6: (1.0, 2.0, 3.0, 4.0, 5.0, math.inf),
    8: (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, math.inf),
}


def residual_attention(scores: torch.Tensor, temperature: float, lam: float) -> torch.Tensor:
    """CSRA logits from per-position class scores s_c^j, shape (B, N, C), to (B, C).

    mean_j s_c^j + lam * sum_j a_c^j s_c^j with a_c = softmax_j(T s_c^j); T = inf gives max_j.
    """
    if math.isinf(temperature):
        attended = scores.amax(dim=1)
    else:
        attended = (torch.softmax(temperature * scores, dim=1) * scores).sum(dim=1)
    return scores.mean(dim=1) + lam * attended


class CSRAHead(nn.Module):
    """Class-specific residual attention (CSRA) over the feature map's positions.

    Zhu & Wu, ICCV 2021, "Residual Attention: A Simple but Effective Method for Multi-Label
    Recognition". Each class scores every position with a bias-free classifier
    (s_c^j = w_c . x_j); the logit is the average-pooled score plus ``lam`` times an
    attention-weighted score, so small lesions that average pooling dilutes still count.
    ``temperature=inf`` (write ``inf``) attends to the best position only. ``heads`` > 1 sums
    heads with their own classifiers and the paper's temperatures (2: 1, inf; 4: 1, 2, 4, inf;
    6: 1..5, inf; 8: 1..7, inf). Unlike the authors' code, scores are not divided by ||w_c||:
    this is the paper's formula.
    """

    spatial = True

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        *,
        lam: float = 0.1,
        temperature: float | Literal["inf"] = 1.0,
        heads: Literal[1, 2, 4, 6, 8] = 1,
    ) -> None:
        super().__init__()
        temperature = float(temperature)
        if lam < 0:
            raise CxrltError(
                f"The csra lam (weight of the attention term) must be >= 0, got {lam}."
            )
        if temperature <= 0:
            raise CxrltError(f"The csra temperature must be positive (or inf), got {temperature}.")
        if heads != 1 and temperature != 1.0:
            raise CxrltError(
                f"The csra temperature sets the single head; heads={heads} uses the paper's "
                "temperatures. Drop temperature=..., or use heads=1."
            )
        if heads != 1 and heads not in _CSRA_TEMPERATURES:
            raise CxrltError(f"csra heads must be 1, 2, 4, 6 or 8 (the paper's), got {heads}.")
        self.temperatures = (temperature,) if heads == 1 else _CSRA_TEMPERATURES[heads]
        self.lam = lam
        self.n_classes = n_classes
        self.classifier = nn.Linear(in_features, len(self.temperatures) * n_classes, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(tokens).unflatten(-1, (len(self.temperatures), self.n_classes))
        return sum(
            residual_attention(scores[:, :, h], t, self.lam)
            for h, t in enumerate(self.temperatures)
        )


class _CrossAttentionLayer(nn.Module):
    """A transformer decoder layer without self-attention: queries attend to tokens, then MLP."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(queries, memory, memory, need_weights=False)
        queries = self.norm1(queries + self.dropout(attended))
        return self.norm2(queries + self.dropout(self.mlp(queries)))


class MLDecoderHead(nn.Module):
    """Ridnik et al., WACV 2023, "ML-Decoder: Scalable and Versatile Classification Head".

    ``n_groups`` queries (0: min(n_classes, 100)) cross-attend to the projected tokens, with no
    self-attention between queries (the paper drops it: it costs quadratic time and gains
    nothing). A group fully-connected layer turns each query into ceil(n_classes / n_groups)
    logits; the first ``n_classes`` are kept. ``learn_queries=False`` keeps the random queries
    fixed, as the authors' code does.
    """

    spatial = True

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        *,
        n_groups: int = 0,
        dim: int = 256,
        layers: int = 1,
        heads: int = 8,
        dropout: float = 0.1,
        learn_queries: bool = True,
    ) -> None:
        super().__init__()
        n_groups = n_groups or min(n_classes, 100)
        if not 0 < n_groups <= n_classes:
            raise CxrltError(f"ml-decoder n_groups must be 1..{n_classes} (or 0), got {n_groups}.")
        if layers < 1:
            raise CxrltError(f"ml-decoder needs layers >= 1 to see the image, got {layers}.")
        if heads < 1 or dim < 1 or dim % heads:
            raise CxrltError(
                f"ml-decoder dim ({dim}) must be a positive multiple of heads ({heads} >= 1)."
            )
        if not 0 <= dropout < 1:
            raise CxrltError(f"ml-decoder dropout must be in [0, 1), got {dropout}.")
        self.n_classes = n_classes
        self.embed = nn.Sequential(nn.Linear(in_features, dim), nn.ReLU())
        queries = torch.randn(n_groups, dim)
        if learn_queries:
            self.queries = nn.Parameter(queries)
        else:
            self.register_buffer("queries", queries)
        self.layers = nn.ModuleList(
            [_CrossAttentionLayer(dim, heads, dropout) for _ in range(layers)]
        )
        per_group = math.ceil(n_classes / n_groups)
        self.group_weight = nn.Parameter(torch.randn(n_groups, dim, per_group) * dim**-0.5)
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        memory = self.embed(tokens)
        queries = self.queries.expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            queries = layer(queries, memory)
        logits = torch.einsum("bgd,gdk->bgk", queries, self.group_weight).flatten(1)
        return logits[:, : self.n_classes] + self.bias
