"""Losses: hand computations with ``math`` on a fixed 2 x 3 batch, and properties."""

from __future__ import annotations

import math

import pytest
import torch

from cxrlt.registry import resolve
from cxrlt.training.losses import (
    AsymmetricLoss,
    BCELoss,
    ClassBalancedLoss,
    FocalLoss,
    LDAMLoss,
    LogitAdjustedBCELoss,
    WeightedBCELoss,
    class_balanced_weights,
)

Z = [[0.5, -1.0, 2.0], [-0.3, 1.5, -2.5]]
Y = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
COUNTS = [50, 10, 2]
N_ITEMS = 100
LOGITS = torch.tensor(Z, dtype=torch.float64)
TARGETS = torch.tensor(Y, dtype=torch.float64)


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def bce(z: float, y: float) -> float:
    """-log(p) for a positive, -log(1 - p) for a negative, written stably for large |z|."""
    return math.log1p(math.exp(-z)) if y else math.log1p(math.exp(z))


def mean_over(fn) -> float:
    """Mean of fn(z, y, c) over the fixed batch."""
    values = [fn(Z[i][c], Y[i][c], c) for i in range(2) for c in range(3)]
    return sum(values) / len(values)


def value(loss, logits=LOGITS, targets=TARGETS) -> float:
    return loss(logits, targets).item()


def test_bce_by_hand():
    assert value(BCELoss()) == pytest.approx(mean_over(lambda z, y, c: bce(z, y)))


def test_weighted_bce_by_hand():
    weights = [min((N_ITEMS - n) / n, 100.0) for n in COUNTS]  # 1, 9, 49

    def term(z, y, c):
        p = sig(z)
        return -(weights[c] * y * math.log(p) + (1 - y) * math.log(1 - p))

    loss = WeightedBCELoss(class_counts=COUNTS, n_items=N_ITEMS)
    assert value(loss) == pytest.approx(mean_over(term))
    clipped = WeightedBCELoss(class_counts=COUNTS, n_items=N_ITEMS, max_weight=5.0)
    assert clipped.pos_weight.tolist() == pytest.approx([1.0, 5.0, 5.0])


def test_focal_by_hand():
    def term(z, y, c):
        p_t = sig(z) if y else 1 - sig(z)
        return (1 - p_t) ** 2 * bce(z, y)

    assert value(FocalLoss(gamma=2.0)) == pytest.approx(mean_over(term))


def test_focal_alpha_weights_positives_alpha_and_negatives_one_minus_alpha():
    """Lin et al.'s alpha-balanced form, alpha_t (1 - p_t)^gamma BCE; off by default."""
    alpha, gamma = 0.25, 2.0

    def term(z, y, c):
        p_t = sig(z) if y else 1 - sig(z)
        return (alpha if y else 1 - alpha) * (1 - p_t) ** gamma * bce(z, y)

    assert value(FocalLoss(gamma=gamma, alpha=alpha)) == pytest.approx(mean_over(term))
    assert FocalLoss().alpha is None
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=1.5)


def test_cb_by_hand():
    beta = 0.99
    raw = [(1 - beta) / (1 - beta**n) for n in COUNTS]
    weights = [w * 3 / sum(raw) for w in raw]
    loss = ClassBalancedLoss(class_counts=COUNTS, beta=beta)
    assert value(loss) == pytest.approx(mean_over(lambda z, y, c: weights[c] * bce(z, y)))


def test_asl_by_hand():
    gn, gp, clip = 4.0, 1.0, 0.05

    def term(z, y, c):
        p = sig(z)
        if y:
            return -((1 - p) ** gp) * math.log(p)
        p_m = max(p - clip, 0.0)
        return -(p_m**gn) * math.log(1 - p_m)

    loss = AsymmetricLoss(gamma_neg=gn, gamma_pos=gp, clip=clip)
    assert value(loss) == pytest.approx(mean_over(term))


def test_ldam_by_hand():
    max_m, s = 0.5, 30.0
    raw = [n**-0.25 for n in COUNTS]
    margins = [m * max_m / max(raw) for m in raw]
    loss = LDAMLoss(class_counts=COUNTS, max_m=max_m, s=s)
    assert value(loss) == pytest.approx(mean_over(lambda z, y, c: bce(s * (z - y * margins[c]), y)))
    assert loss.activation(LOGITS)[0, 0].item() == pytest.approx(sig(s * Z[0][0]))


def test_logit_adjusted_by_hand():
    tau = 1.0
    priors = [min(max(n / N_ITEMS, 1e-6), 1 - 1e-6) for n in COUNTS]
    offsets = [tau * math.log(q / (1 - q)) for q in priors]
    loss = LogitAdjustedBCELoss(class_counts=COUNTS, n_items=N_ITEMS, tau=tau)
    assert value(loss) == pytest.approx(mean_over(lambda z, y, c: bce(z + offsets[c], y)))


def test_reductions_to_bce():
    plain = value(BCELoss())
    assert value(FocalLoss(gamma=0.0)) == pytest.approx(plain)
    assert value(AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)) == pytest.approx(plain)
    assert value(LDAMLoss(class_counts=COUNTS, max_m=0.0, s=1.0)) == pytest.approx(plain)


def test_ldam_margin_only_on_positives():
    s = 30.0
    loss = LDAMLoss(class_counts=COUNTS, max_m=0.5, s=s)
    per_element = loss.elementwise(LOGITS, TARGETS)
    plain = BCELoss().elementwise(s * LOGITS, TARGETS)
    negatives, positives = TARGETS == 0, TARGETS == 1
    assert torch.allclose(per_element[negatives], plain[negatives])
    assert (per_element[positives] > plain[positives]).all()  # a margin makes positives harder


def test_asl_defaults_are_the_papers_final_recipe():
    """Ridnik et al., ICCV 2021: gamma- = 4, gamma+ = 0 (no focusing on positives), m = 0.05."""
    loss = AsymmetricLoss()
    assert (loss.gamma_neg, loss.gamma_pos, loss.clip) == (4.0, 0.0, 0.05)

    def term(z, y, c):
        if y:
            return -math.log(sig(z))  # gamma+ = 0: plain log-likelihood for positives
        p_m = max(sig(z) - 0.05, 0.0)
        return -(p_m**4) * math.log(1 - p_m)

    assert value(loss) == pytest.approx(mean_over(term))


def test_asl_negative_weight_grows_with_p():
    logits = torch.logit(torch.tensor([[0.3, 0.8]], dtype=torch.float64))
    targets = torch.zeros_like(logits)
    ratio = AsymmetricLoss().elementwise(logits, targets) / BCELoss().elementwise(logits, targets)
    assert ratio[0, 1] > ratio[0, 0] > 0


def test_cb_weights_sum_to_classes_rarest_largest():
    weights = class_balanced_weights([5000, 300, 0, 20], beta=0.9999)
    assert weights.sum().item() == pytest.approx(4.0)
    assert weights.argmax().item() == 2  # n_c = 0 counts as 1: the rarest
    assert weights[3] > weights[1] > weights[0]


def test_logit_adjusted_activation_is_plain_sigmoid():
    loss = LogitAdjustedBCELoss(class_counts=COUNTS, n_items=N_ITEMS)
    assert torch.equal(loss.activation(LOGITS), torch.sigmoid(LOGITS))


@pytest.mark.parametrize(
    "name", ["bce", "weighted-bce", "focal", "cb", "asl", "ldam", "logit-adjusted"]
)
def test_registered_loss_builds_and_backpropagates(name):
    loss = resolve("losses", name).build(class_counts=[120, 7, 0, 33], n_items=200)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator, requires_grad=True)
    targets = (torch.rand(5, 4, generator=generator) > 0.5).float()
    result = loss(logits, targets)
    assert result.ndim == 0 and torch.isfinite(result)
    result.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    probs = loss.activation(logits.detach())
    assert ((probs >= 0) & (probs <= 1)).all()
    assert loss.decodes(probs).dtype == torch.bool
