"""The plugin's image-text model: images and texts embedded in one space, where cosine
similarity scores a match (``cxrlt zero-shot --model my-clip``)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

_BINS, _WORDS = 16, 256


class MyImageTextModel:
    """Images by their intensity histogram, texts by their words, each projected into one
    space by a fixed random matrix drawn from ``seed``: nothing to download, so it shows the
    contract, not a useful model. A real plugin loads pretrained weights here and applies its
    model's own preprocessing in ``encode_images``.

    cxrlt decodes images as greyscale (N, image_size, image_size) uint8 arrays and compares
    unit-length embeddings; ``logit_scale`` is the temperature of ``--probability softmax``.
    """

    def __init__(self, *, width: int = 32, seed: int = 0, image_size: int = 64) -> None:
        if width < 2:
            raise ValueError(f"width must be at least 2, got {width}")
        rng = np.random.default_rng(seed)
        self.image_size, self.logit_scale, self.device = image_size, 10.0, torch.device("cpu")
        self.image_projection = torch.tensor(rng.normal(size=(_BINS, width)), dtype=torch.float32)
        self.word_projection = torch.tensor(rng.normal(size=(_WORDS, width)), dtype=torch.float32)

    def to(self, device: Any) -> MyImageTextModel:
        self.device = torch.device(device)
        self.image_projection = self.image_projection.to(self.device)
        self.word_projection = self.word_projection.to(self.device)
        return self

    def encode_images(self, pixels: np.ndarray) -> torch.Tensor:
        shares = [np.histogram(p, bins=_BINS, range=(0, 256))[0] / p.size for p in pixels]
        features = torch.tensor(np.stack(shares), dtype=torch.float32, device=self.device)
        return torch.nn.functional.normalize(features @ self.image_projection, dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        counts = torch.zeros(len(texts), _WORDS, device=self.device)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                counts[row, zlib.crc32(word.encode()) % _WORDS] += 1
        return torch.nn.functional.normalize(counts @ self.word_projection, dim=-1)
