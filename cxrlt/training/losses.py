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
from fastai.callback.core import Callback
from torch import nn

from cxrlt.training.reweighting import DeferredReweighting


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
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), like 0.9999; got {beta}")
    n = _counts(class_counts)
    weights = (1.0 - beta) / (1.0 - beta**n)
    return (weights * len(n) / weights.sum()).float()


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, the unweighted baseline of every CXR-LT study.

    ``positive_weights`` (one per class, or None) multiplies the positive terms of any
    subclass's loss: deferred re-weighting switches it on during training.
    """

    positive_weights: torch.Tensor | None = None

    def __init__(self) -> None:  # an explicit signature: no parameters to accept
        super().__init__()

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-element loss; ``forward`` averages it over all elements."""
        return bce_elementwise(logits, targets)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        loss = self.elementwise(logits, targets)
        if self.positive_weights is not None:  # y * w * l_pos + (1 - y) * l_neg
            loss = loss * (1 + targets * (self.positive_weights.to(logits) - 1))
        return loss.mean()

    def callbacks(self) -> list[Callback]:
        """fastai callbacks the loss needs during training (``cxr_learner`` adds them)."""
        return []

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
    """Lin et al., ICCV 2017, "Focal Loss for Dense Object Detection": alpha_t (1 - p_t)^gamma
    * BCE, with alpha_t = alpha for positives and 1 - alpha for negatives.

    ``alpha=None`` (the default) leaves the balance out (alpha_t = 1); the paper's detector used
    alpha = 0.25 with gamma = 2, a weight that favours negatives.
    """

    def __init__(self, *, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        if alpha is not None and not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1] (or None: off), got {alpha}")
        if gamma < 0:
            raise ValueError(f"gamma must be at least 0 (0: plain BCE), got {gamma}")
        self.gamma, self.alpha = gamma, alpha

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        p_t = targets * p + (1 - targets) * (1 - p)
        loss = (1 - p_t) ** self.gamma * bce_elementwise(logits, targets)
        if self.alpha is None:
            return loss
        return (targets * self.alpha + (1 - targets) * (1 - self.alpha)) * loss


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
    Mean over elements, like BCE. Defaults: the paper's final recipe, gamma_neg = 4,
    gamma_pos = 0, clip (probability margin m) = 0.05.
    """

    def __init__(
        self, *, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05
    ) -> None:
        if min(gamma_neg, gamma_pos) < 0 or not 0 <= clip < 1:
            raise ValueError(
                f"gamma_neg and gamma_pos must be at least 0 and clip in [0, 1), got "
                f"{gamma_neg}, {gamma_pos}, {clip}"
            )
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
        if not (max_m >= 0 and s > 0):
            raise ValueError(f"max_m must be at least 0 and s positive, got {max_m}, {s}")
        super().__init__()
        margins = _counts(class_counts) ** -0.25
        self.register_buffer("margins", (margins * max_m / margins.max()).float())
        self.s = s

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        shifted = logits - targets * self.margins.to(logits)
        return bce_elementwise(self.s * shifted, targets)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.s * logits)


class DeferredReweightedBCELoss(BCELoss):
    """BCE with deferred re-weighting: class-balanced positive weights from epoch ``start``
    (default 80% of training) on; see :mod:`cxrlt.training.reweighting`."""

    def __init__(
        self, *, class_counts: Sequence[int], start: int | None = None, beta: float = 0.9999
    ) -> None:
        super().__init__()
        self.reweighting = DeferredReweighting(class_balanced_weights(class_counts, beta), start)

    def callbacks(self) -> list[Callback]:
        return [self.reweighting]


class LDAMDRWLoss(LDAMLoss):
    """LDAM with deferred re-weighting (Cao et al., NeurIPS 2019), the founding paper's best loss.

    Margins throughout; class-balanced positive weights (beta 0.9999) from epoch ``start``.
    """

    def __init__(
        self,
        *,
        class_counts: Sequence[int],
        max_m: float = 0.5,
        s: float = 30.0,
        start: int | None = None,
        beta: float = 0.9999,
    ) -> None:
        super().__init__(class_counts=class_counts, max_m=max_m, s=s)
        self.reweighting = DeferredReweighting(class_balanced_weights(class_counts, beta), start)

    def callbacks(self) -> list[Callback]:
        return [self.reweighting]


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


class DistributionBalancedLoss(BCELoss):
    """Wu et al., ECCV 2020, "Distribution-Balanced Loss for Multi-Label Classification in
    Long-Tailed Datasets": re-balanced weights, negative-tolerant regularisation and focal term.

    With z the logit, y in {0, 1}, n_c the positives of class c (an empty class counts as one),
    N = ``n_items`` and p_c = n_c / N clipped to [1e-6, 1 - 1e-6], the per-element loss is

        b_c   = -log(1 / p_c - 1)                 (logit of the prior: sigmoid(b_c) = p_c)
        nu_c  = -kappa * b_c / lambda             (so z - nu_c = z + kappa * b_c / lambda)
        s     = z - nu_c                          (logit shifted towards the prior log-odds)
        r     = (1 / n_c) / sum_{j : y_j = 1} (1 / n_j),   or r = 1 if the image has no positive
        r_hat = alpha + sigmoid(beta * (r - mu))
        loss  = -r_hat * [ y * sigmoid(-s)^gamma * log sigmoid(s)
                           + (1 - y) * sigmoid(lambda * s)^gamma * (1 / lambda)
                             * log(1 - sigmoid(lambda * s)) ]

    with lambda = ``neg_scale``. The focal factor (1 - p_t)^gamma uses the probability of the
    term it multiplies: p_t = sigmoid(s) for a positive, 1 - sigmoid(lambda * s) for a negative;
    ``gamma = 0`` switches it off. Mean over elements, like BCE.

    The bias follows the reference implementation (wutong16/DistributionBalancedLoss,
    ``ResampleLoss``), which adds ``init_bias = -log(N / n_c - 1) * kappa / neg_scale``, that is
    kappa * b_c / lambda, to the logits: the logit is shifted towards the prior's log-odds as if
    the classifier bias were initialised there; a rare class (b_c < 0) starts with a low
    probability, so its many negatives are not over-suppressed. In the paper's notation
    L(z - nu) this is nu_c = -kappa * b_c / lambda.

    Re-balancing: r is P^C_c / P^I(x), the class-level sampling probability 1 / n_c over the
    instance-level one, the sum of 1 / n_j over the image's positives; the same r is applied to
    every class of the image, positives and negatives, as in the reference implementation. It
    is designed to pair with class-aware re-sampling (cxrlt's ``class-aware`` sampler): within an
    image, a rare positive gets a larger weight than a co-occurring head positive, while the only
    positive of a single-label image gets r = 1 whatever its class. An image with no positive
    has P^I = 0 and no defined r; it gets r = 1 (r_hat = alpha + sigmoid(beta * (1 - mu)), about
    1.1 at the defaults): the weight of a single-label image's own positive, finite, and near the
    reference code's alpha + 1 (there 1 / 0 = inf saturates the sigmoid). The paper's focal
    balance constant (a fixed factor on the whole loss) is left out.

    ``activation`` is sigmoid(z - nu_c), the positive-term probability
    the loss trains; per class it is a monotone shift of sigmoid(z), so rankings are unchanged.
    """

    def __init__(
        self,
        *,
        class_counts: Sequence[int],
        n_items: int,
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.2,
        kappa: float = 0.05,
        neg_scale: float = 2.0,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        if neg_scale <= 0 or gamma < 0:
            raise ValueError(
                f"neg_scale must be positive and gamma at least 0, got {neg_scale}, {gamma}"
            )
        n = _counts(class_counts)
        prior = (n / max(n_items, 1)).clamp(1e-6, 1 - 1e-6)
        self.register_buffer("inv_counts", (1.0 / n).float())
        nu = kappa * torch.log(1 / prior - 1) / neg_scale  # -kappa * b_c / lambda
        self.register_buffer("nu", nu.float())
        self.alpha, self.beta, self.mu = alpha, beta, mu
        self.neg_scale, self.gamma = neg_scale, gamma

    def rebalance_weights(self, targets: torch.Tensor) -> torch.Tensor:
        """Per-element r_hat = alpha + sigmoid(beta * (r - mu)); r = 1 if no label is positive."""
        inv = self.inv_counts.to(targets)
        instance = (targets * inv).sum(dim=-1, keepdim=True)  # P^I(x), up to the same constant
        has_positive = instance > 0
        r = torch.where(has_positive, inv / torch.where(has_positive, instance, 1.0), 1.0)
        return self.alpha + torch.sigmoid(self.beta * (r - self.mu))

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        s = logits - self.nu.to(logits)
        lam = self.neg_scale
        # (1 - p_t)^gamma as exp(gamma * log(1 - p_t)): finite values and gradients for any |z|
        pos = torch.exp(self.gamma * F.logsigmoid(-s)) * F.logsigmoid(s)
        neg = torch.exp(self.gamma * F.logsigmoid(lam * s)) * F.logsigmoid(-lam * s) / lam
        weights = self.rebalance_weights(targets).detach()
        return -weights * (targets * pos + (1 - targets) * neg)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits - self.nu.to(logits))
