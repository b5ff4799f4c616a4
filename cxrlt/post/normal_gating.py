"""Normal gating, from the CXR-LT 2026 winning entry: p_c <- p_c * (1 - p_Normal)^alpha for
every finding c, Normal itself unchanged.

A confident "Normal" is evidence against every finding, which independent sigmoids ignore;
gating lowers the findings' probabilities on films the model finds normal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from fastai.learner import Learner
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.post import PostStep, learner_classes, require_sigmoid


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, accurate on both sides of -log 2 (Maechler, 2012)."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-x.exp()))


def gate_logits(logits: torch.Tensor, normal: int, alpha: float) -> torch.Tensor:
    """Logits whose sigmoid is the gated probability p_c * g, g = (1 - p_Normal)^alpha.

    In log space: logit = log p_c + log g - log(1 - p_c g), with
    1 - p_c g = (1 - p_c) + p_c (1 - g), so no probability is ever rounded to 0 or 1.
    """
    log_gate = alpha * F.logsigmoid(-logits[:, normal : normal + 1])
    log_p = F.logsigmoid(logits) + log_gate
    log_not_p = torch.logaddexp(F.logsigmoid(-logits), F.logsigmoid(logits) + log1mexp(log_gate))
    gated = log_p - log_not_p
    gated[:, normal] = logits[:, normal]
    return gated


class NormalGated(nn.Module):
    """``model`` with its findings' probabilities gated by the class at index ``normal``."""

    def __init__(self, model: nn.Module, normal: int, alpha: float) -> None:
        super().__init__()
        self.model, self.normal, self.alpha = model, normal, alpha

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return gate_logits(self.model(images), self.normal, self.alpha)


class NormalGating(PostStep):
    """Gate every finding's probability by (1 - p_Normal)^alpha, Normal being the class named
    ``normal``. Needs a loss whose probabilities are sigmoid(logit)."""

    def __init__(self, *, alpha: float = 0.5, normal: str = "Normal") -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha, self.normal = alpha, normal

    def check(self, learn: Learner) -> None:
        require_sigmoid(learn, "normal-gating")
        self._normal_index(learner_classes(learn))

    def wrap(self, model: nn.Module, classes: Sequence[str]) -> nn.Module:
        return NormalGated(model, self._normal_index(classes), self.alpha)

    def _normal_index(self, classes: Sequence[str]) -> int:
        if self.normal not in classes:
            raise CxrltError(
                f"normal-gating needs a class named {self.normal!r}, and the classes are: "
                f"{', '.join(classes)}. Name the no-finding class with normal=..."
            )
        return list(classes).index(self.normal)
