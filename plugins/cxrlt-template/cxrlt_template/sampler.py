"""The plugin's sampler: which training images an epoch visits, and in what order."""

from __future__ import annotations

import numpy as np


class MySampler:
    """Images with at least one finding ``repeat`` times per epoch, the others once, shuffled.

    cxrlt builds a sampler with ``labels``, the training labels as an (images, classes) 0/1
    array, and calls ``indices(rng)`` once per epoch for the item order. Draw every random
    number from ``rng``, the numpy Generator cxrlt seeds alike on every GPU, so that all
    ranks of a distributed run agree on the order.
    """

    def __init__(self, labels: np.ndarray, *, repeat: int = 2) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be at least 1, got {repeat}")
        copies = np.where(np.asarray(labels).any(axis=1), repeat, 1)
        self.epoch = np.repeat(np.arange(len(copies)), copies)

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.epoch)
