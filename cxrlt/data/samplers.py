"""Training samplers: each gives one epoch's order of item indices from a seeded generator,
so every rank of a distributed run draws the same order."""

from __future__ import annotations

import numpy as np


class UniformSampler:
    """Every item once per epoch, shuffled."""

    def __init__(self, labels: np.ndarray) -> None:
        self.n_items = len(labels)

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n_items)
