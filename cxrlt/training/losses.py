"""Multi-label losses as fastai expects them: a module with ``activation`` and ``decodes``.

``activation`` turns logits into probabilities the way the loss was trained, so
``Learner.get_preds`` and every calibration step see the same probabilities.

Every loss here is the mean over all elements (images x classes) of a per-element loss, the
convention of plain BCE, so values are comparable across losses. Subclasses of ``BCELoss``
override ``elementwise`` only. Per-class tensors derived from ``class_counts`` are buffers;
``forward`` moves them to the logits' device and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def bce_elementwise(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-element binary cross-entropy on logits (no reduction)."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def _counts(class_counts: Sequence[int]) -> torch.Tensor:
    """Positives per class as floats, with empty classes counted as one positive."""
    return torch.as_tensor(list(class_counts), dtype=torch.float64).clamp(min=1.0)


def class_balanced_weights(class_counts: Sequence[int], beta: float = 0.9999) -> torch.Tensor:
    """Cui et al., CVPR 2019, "Class-Balanced Loss Based on Effective Number of Samples".

    w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to the number of classes; a class with
    no positives counts as n_c = 1.
    """
    n = _counts(class_counts)
    weights = (1.0 - beta) / (1.0 - beta**n)
    return (weights * len(n) / weights.sum()).float()


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, the unweighted baseline of every CXR-LT study."""

    def __init__(self) -> None:  # an explicit signature: no parameters to accept
        super().__init__()

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-element loss; ``forward`` averages it over all elements."""
        return bce_elementwise(logits, targets)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.elementwise(logits, targets.to(logits.dtype)).mean()

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def decodes(self, probs: torch.Tensor) -> torch.Tensor:
        return probs > 0.5


class WeightedBCELoss(BCELoss):
    """BCE with a per-class positive weight (n_items - n_c) / n_c, clipped to ``max_weight``."""

    def __init__(
        self, *, class_counts: Sequence[int], n_items: int, max_weight: float = 100.0
    ) -> None:
        super().__init__()
        n = _counts(class_counts)
        self.register_buffer("pos_weight", ((n_items - n) / n).clamp(0.0, max_weight).float())

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight.to(logits), reduction="none"
        )


class FocalLoss(BCELoss):
    """Lin et al., ICCV 2017, "Focal Loss for Dense Object Detection": (1 - p_t)^gamma * BCE."""

    def __init__(self, *, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        p_t = targets * p + (1 - targets) * (1 - p)
        return (1 - p_t) ** self.gamma * bce_elementwise(logits, targets)


class ClassBalancedLoss(BCELoss):
    """Cui et al., CVPR 2019: BCE with class-balanced weights on positive and negative terms."""

    def __init__(self, *, class_counts: Sequence[int], beta: float = 0.9999) -> None:
        super().__init__()
        self.register_buffer("weights", class_balanced_weights(class_counts, beta))

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.weights.to(logits) * bce_elementwise(logits, targets)


class AsymmetricLoss(BCELoss):
    """Ridnik et al., ICCV 2021, "Asymmetric Loss For Multi-Label Classification".

    Positives: -(1 - p)^gamma_pos * log(p). Negatives: -p_m^gamma_neg * log(1 - p_m) with the
    shifted probability p_m = max(p - clip, 0), so a hard negative (large p) costs more.
    Mean over elements, like BCE.
    """

    def __init__(
        self, *, gamma_neg: float = 4.0, gamma_pos: float = 1.0, clip: float = 0.05
    ) -> None:
        super().__init__()
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        if self.clip > 0:
            p_m = (p - self.clip).clamp(min=0.0)
            log_neg = torch.log((1 - p_m).clamp(min=1e-8))
        else:  # no shift: the stable form
            p_m, log_neg = p, F.logsigmoid(-logits)
        pos = (1 - p) ** self.gamma_pos * F.logsigmoid(logits)
        neg = p_m**self.gamma_neg * log_neg
        return -(targets * pos + (1 - targets) * neg)


class LDAMLoss(BCELoss):
    """Cao et al., NeurIPS 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", multi-label form: BCE(s * (z - y * Delta), y).

    Delta_c is proportional to n_c^(-1/4), scaled so the largest margin is ``max_m``. The scale
    ``s`` is applied at inference too: ``activation`` is sigmoid(s * z).
    """

    def __init__(self, *, class_counts: Sequence[int], max_m: float = 0.5, s: float = 30.0) -> None:
        super().__init__()
        margins = _counts(class_counts) ** -0.25
        self.register_buffer("margins", (margins * max_m / margins.max()).float())
        self.s = s

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        shifted = logits - targets * self.margins.to(logits)
        return bce_elementwise(self.s * shifted, targets)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.s * logits)


class LogitAdjustedBCELoss(BCELoss):
    """Menon et al., ICLR 2021, "Long-Tail Learning via Logit Adjustment", for BCE.

    Training: BCE(z + tau * log(pi_c / (1 - pi_c))), pi_c = n_c / n_items clipped to
    [1e-6, 1 - 1e-6]. Test: plain sigmoid(z) (the inherited ``activation``).
    """

    def __init__(self, *, class_counts: Sequence[int], n_items: int, tau: float = 1.0) -> None:
        super().__init__()
        prior = (torch.as_tensor(list(class_counts), dtype=torch.float64) / max(n_items, 1)).clamp(
            1e-6, 1 - 1e-6
        )
        self.register_buffer("offsets", (tau * torch.log(prior / (1 - prior))).float())

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return bce_elementwise(logits + self.offsets.to(logits), targets)
