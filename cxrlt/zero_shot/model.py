"""The contract of an image-text model: what zero-shot scoring needs and nothing more, so any
vision-language library can be plugged in (``register_image_text_models``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch


@runtime_checkable
class ImageTextModel(Protocol):
    """Images and texts embedded in one space, where cosine similarity scores a match.

    ``image_size`` is the side cxrlt decodes images at (windowed greyscale, as for training);
    the model applies its own preprocessing (channels, range, mean and std) in
    ``encode_images``. ``logit_scale`` is the model's learned temperature, the default scale of
    the softmax probability mapping.
    """

    image_size: int
    logit_scale: float

    def to(self, device: Any) -> ImageTextModel:
        """The model on ``device``."""
        ...

    def encode_images(self, pixels: np.ndarray) -> torch.Tensor:
        """(N, H, W) uint8 greyscale images to (N, D) unit-length embeddings."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts to (T, D) unit-length embeddings."""
        ...
