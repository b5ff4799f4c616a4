"""What backbones and heads provide, as protocols of the hook contracts: a plugin's classes can
be annotated with them, and ``isinstance`` checks that the members are there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Backbone(Protocol):
    """A feature extractor (an ``nn.Module``): ``forward`` gives pooled (B, num_features)
    features, ``forward_features`` the unpooled map that spatial heads take."""

    num_features: int

    def forward(self, images: torch.Tensor) -> torch.Tensor: ...

    def forward_features(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Head(Protocol):
    """A classifier head (an ``nn.Module``): (B, in_features) pooled features, or (B, N,
    in_features) tokens when its class sets ``spatial = True``, to (B, n_classes) logits."""

    def forward(self, features: torch.Tensor) -> torch.Tensor: ...
