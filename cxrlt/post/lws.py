"""Learnable weight scaling (LWS), Kang et al., ICLR 2020, "Decoupling Representation and
Classifier for Long-Tailed Recognition".

One learnt scale per class multiplies the logit, trained on class-balanced batches with the
rest of the model frozen: it corrects the head-class bias in the logits' magnitudes without
retraining the classifier. A positive scale leaves each class's ranking, hence its AP, as it
was: with independent sigmoids LWS moves calibration and fixed-threshold predictions only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from fastai.learner import Learner
from torch import nn

from cxrlt.post import PostStep
from cxrlt.post.retrain import require_sampled_loader, retrain
from cxrlt.registry import resolve


class ScaledLogits(nn.Module):
    """``model``'s logits times a learnable per-class ``scales`` (initially 1)."""

    def __init__(self, model: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.model = model
        self.scales = nn.Parameter(torch.ones(n_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images) * self.scales


class LearnableWeightScaling(PostStep):
    """Add per-class logit scales and train them alone for ``epochs`` (one cycle up to ``lr``)
    on batches drawn by ``sampler``; the model stays frozen and in eval mode."""

    def __init__(self, *, epochs: int = 10, lr: float = 1e-3, sampler: str = "class-aware") -> None:
        if epochs < 1 or lr <= 0:
            raise ValueError(f"epochs must be >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
        self.epochs, self.lr, self.sampler = epochs, lr, resolve("samplers", sampler)

    def wrap(self, model: nn.Module, classes: Sequence[str]) -> nn.Module:
        return ScaledLogits(model, len(classes))

    def check(self, learn: Learner) -> None:
        require_sampled_loader(learn)

    def fit(self, learn: Learner) -> None:
        scales = learn.model.scales
        retrain(learn, [scales], [], sampler=self.sampler, epochs=self.epochs, lr=self.lr)
