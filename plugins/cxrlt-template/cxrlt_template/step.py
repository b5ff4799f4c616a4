"""The plugin's post-training step: post-hoc logit adjustment (Menon et al., ICLR 2021).

A class's logit is lowered by ``tau * logit(prior_c)``, ``prior_c`` the share of training
images positive for it: rare classes (prior below 1/2) gain, common ones lose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from fastai.learner import Learner
from torch import nn

from cxrlt import PostStep, training_label_counts


class LogitOffset(nn.Module):
    """The wrapped model's logits plus one offset per class, a buffer saved with the weights."""

    def __init__(self, model: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.zeros(n_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images) + self.offset


class MyStep(PostStep):
    """Post-hoc logit adjustment: offsets ``-tau * logit(prior_c)`` from the training labels.

    ``check`` refuses loaders whose training labels cannot be counted before any step
    changes the model; ``wrap`` adds the offsets, zero, using no data (prediction repeats it
    from the spec); ``fit`` computes them into the model's state_dict, which the run's
    weights keep.
    """

    def __init__(self, *, tau: float = 1.0) -> None:
        self.tau = tau

    def check(self, learn: Learner) -> None:
        training_label_counts(learn.dls)  # a CxrltError naming the fix when it cannot count

    def wrap(self, model: nn.Module, classes: Sequence[str]) -> nn.Module:
        return LogitOffset(model, len(classes))

    @torch.no_grad()
    def fit(self, learn: Learner) -> None:
        counts, n_train = training_label_counts(learn.dls)
        prior = torch.as_tensor(counts / n_train, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        learn.model.offset.copy_(-self.tau * torch.logit(prior))
