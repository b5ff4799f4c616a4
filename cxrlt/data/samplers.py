"""Training samplers: each gives one epoch's order of item indices from a seeded generator,
so every rank of a distributed run draws the same order.

Samplers are built as ``Class(labels=<(N, C) 0/1 train labels>, **params)``; ``indices(rng)``
returns one epoch (N indices, except repeat-factor, whose length varies) and depends only on
the generator's state.

Multi-label caveat: re-balancing works per image, not per label. Over-sampling an image for
its rare class also over-samples every head label that co-occurs on it (e.g. a rare finding
usually seen with effusion), so the head classes' shares move less than the rare class's and
the class frequencies never become exactly balanced.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from cxrlt.errors import CxrltError


@runtime_checkable
class Sampler(Protocol):
    """The contract of a sampler: one epoch's item order, drawn from ``rng`` alone, so every
    rank of a distributed run that seeds it alike gets the same order."""

    def indices(self, rng: np.random.Generator) -> np.ndarray: ...


class UniformSampler:
    """Every item once per epoch, shuffled."""

    def __init__(self, labels: np.ndarray) -> None:
        self.n_items = len(labels)

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n_items)


def _positives(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels as a boolean (N, C) matrix and the positives per class."""
    pos = np.asarray(labels).astype(bool)
    if pos.ndim != 2:
        raise CxrltError(f"sampler labels must be an (images, classes) matrix, got {pos.shape}")
    return pos, pos.sum(axis=0)


def _rarest_count(labels: np.ndarray) -> np.ndarray:
    """Per image: the positive count of its rarest positive class (images without positives
    get the most frequent class's count)."""
    pos, counts = _positives(labels)
    masked = np.where(pos, counts, np.iinfo(np.int64).max)
    rarest = masked.min(axis=1) if pos.shape[1] else np.zeros(len(pos), np.int64)
    return np.where(pos.any(axis=1), rarest, max(int(counts.max(initial=0)), 1)).astype(float)


class _WeightedSampler:
    """N draws with replacement, image i with probability ∝ ``self.weights[i]``."""

    weights: np.ndarray

    def _set_weights(self, weights: np.ndarray) -> None:
        total = weights.sum()
        if not len(weights) or total <= 0:
            raise CxrltError(f"{type(self).__name__}: no image can be drawn (no positive labels)")
        self.weights = weights / total

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(self.weights), size=len(self.weights), p=self.weights)


class ClassAwareSampler(_WeightedSampler):
    """Class-aware sampling (Shen et al. 2016): a class uniformly among those with positives,
    then one of its positive images uniformly. As per-image weights: sum over the image's
    positive classes of 1 / (K n_c), K = classes with positives."""

    def __init__(self, labels: np.ndarray) -> None:
        pos, counts = _positives(labels)
        present = counts > 0
        per_class = np.zeros(len(counts))
        per_class[present] = 1.0 / (present.sum() * counts[present])
        self._set_weights(pos @ per_class)


class SquareRootSampler(_WeightedSampler):
    """Image weight ∝ 1 / sqrt(n_c) of its rarest positive class."""

    def __init__(self, labels: np.ndarray) -> None:
        self._set_weights(1.0 / np.sqrt(_rarest_count(labels)))


class InverseRarestSampler(_WeightedSampler):
    """Image weight ∝ 1 / n_c of its rarest positive class."""

    def __init__(self, labels: np.ndarray) -> None:
        self._set_weights(1.0 / _rarest_count(labels))


class RepeatFactorSampler:
    """Repeat-factor sampling (LVIS, Gupta et al., CVPR 2019): r_c = max(1, sqrt(t / f_c))
    with f_c the fraction of images showing class c; image factor r_i = max r_c over its
    positives (at most ``cap`` when one is given: the paper has none), 1 without positives.
    Each image appears floor(r_i) times plus once more with probability frac(r_i); the epoch
    is shuffled, so its length varies around sum(r_i).

    ``t`` defaults to 0.01, not LVIS's 0.001, for CXR-LT's larger tail classes (why:
    ``cxrlt show sampler repeat-factor``).
    """

    def __init__(self, labels: np.ndarray, *, t: float = 0.01, cap: float | None = None) -> None:
        if t <= 0 or (cap is not None and cap < 1):
            raise CxrltError(
                f"repeat-factor needs t > 0 and cap >= 1 (or no cap), got t={t}, cap={cap}"
            )
        pos, counts = _positives(labels)
        freq = counts / max(len(pos), 1)
        with np.errstate(divide="ignore"):
            per_class = np.maximum(1.0, np.sqrt(t / freq))
        factor = np.where(pos, per_class, 1.0).max(axis=1, initial=1.0)
        self.factors = factor if cap is None else np.minimum(cap, factor)

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        whole = np.floor(self.factors)
        repeats = whole + (rng.random(len(self.factors)) < self.factors - whole)
        return rng.permutation(np.repeat(np.arange(len(self.factors)), repeats.astype(int)))
