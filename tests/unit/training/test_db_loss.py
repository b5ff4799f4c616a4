"""Distribution-balanced loss: a hand computation with ``math`` on a fixed 3 x 3 batch (two
positives, one positive, no positive), its reduction to BCE, and properties."""

from __future__ import annotations

import math

import pytest
import torch

from cxrlt.registry import resolve
from cxrlt.training.losses import BCELoss, DistributionBalancedLoss

Z = [[0.5, -1.0, 2.0], [-0.3, 1.5, -2.5], [1.2, -0.7, 0.4]]
Y = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]  # two positives, one, none
COUNTS = [50, 10, 2]  # head, middle, rare
N_ITEMS = 100
LOGITS = torch.tensor(Z, dtype=torch.float64)
TARGETS = torch.tensor(Y, dtype=torch.float64)


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def db_term(z, y, c, row, *, alpha=0.1, beta=10.0, mu=0.2, kappa=0.05, lam=2.0, gamma=2.0):
    """The documented formula, element by element, for image ``row`` of the batch."""
    p = COUNTS[c] / N_ITEMS
    b = -math.log(1 / p - 1)  # sigmoid(b) = p
    s = z + kappa * b / lam  # z - nu_c with nu_c = -kappa * b_c / lambda (reference code)
    instance = sum(1 / COUNTS[j] for j in range(3) if row[j])
    r = (1 / COUNTS[c]) / instance if instance else 1.0
    r_hat = alpha + sig(beta * (r - mu))
    if y:
        return -r_hat * (1 - sig(s)) ** gamma * math.log(sig(s))
    q = sig(lam * s)  # the negative term's probability: p_t = 1 - q
    return -r_hat * q**gamma * (1 / lam) * math.log(1 - q)


def mean_db(**params) -> float:
    values = [db_term(Z[i][c], Y[i][c], c, Y[i], **params) for i in range(3) for c in range(3)]
    return sum(values) / len(values)


def value(loss, logits=LOGITS, targets=TARGETS) -> float:
    return loss(logits, targets).item()


def test_db_by_hand():
    loss = DistributionBalancedLoss(class_counts=COUNTS, n_items=N_ITEMS)
    assert value(loss) == pytest.approx(mean_db())
    assert value(loss) != pytest.approx(mean_db(kappa=-0.05))  # the bias sign matters


def test_db_by_hand_other_parameters():
    params = dict(alpha=0.3, beta=5.0, mu=0.4, kappa=0.2, gamma=1.0)
    loss = DistributionBalancedLoss(class_counts=COUNTS, n_items=N_ITEMS, neg_scale=3.0, **params)
    assert value(loss) == pytest.approx(mean_db(lam=3.0, **params))


def test_image_without_positives_gets_the_weight_of_r_equal_one():
    loss = DistributionBalancedLoss(class_counts=COUNTS, n_items=N_ITEMS)
    weights = loss.rebalance_weights(TARGETS)
    expected = 0.1 + sig(10.0 * (1.0 - 0.2))
    assert weights[2].tolist() == pytest.approx([expected] * 3)
    assert torch.isfinite(loss.elementwise(LOGITS, TARGETS)).all()


def test_reduces_to_scaled_bce():
    # kappa 0: no shift; lambda 1: plain negative term; gamma 0: no focal factor;
    # alpha 1, beta 0: r_hat = 1 + sigmoid(0) = 1.5 for every element
    loss = DistributionBalancedLoss(
        class_counts=COUNTS, n_items=N_ITEMS, alpha=1.0, beta=0.0, kappa=0.0, neg_scale=1.0, gamma=0
    )
    assert value(loss) == pytest.approx(1.5 * value(BCELoss()))
    assert torch.allclose(
        loss.elementwise(LOGITS, TARGETS), 1.5 * BCELoss().elementwise(LOGITS, TARGETS)
    )
    assert torch.allclose(loss.activation(LOGITS), torch.sigmoid(LOGITS))


def test_rare_positive_outweighs_head_positive_in_the_same_image():
    loss = DistributionBalancedLoss(class_counts=COUNTS, n_items=N_ITEMS)
    targets = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    weights = loss.rebalance_weights(targets)
    # head and rare together: r = (1/50) / (1/50 + 1/2) and (1/2) / (1/50 + 1/2)
    r_head, r_rare = (1 / 50) / (1 / 50 + 1 / 2), (1 / 2) / (1 / 50 + 1 / 2)
    assert weights[0, 0].item() == pytest.approx(0.1 + sig(10 * (r_head - 0.2)), rel=1e-6)
    assert weights[0, 2].item() == pytest.approx(0.1 + sig(10 * (r_rare - 0.2)), rel=1e-6)
    assert weights[0, 2] > 1 > weights[0, 0]  # the co-occurring head positive is discounted
    # a single positive has r = 1 whatever its class: the weight corrects co-occurrence only
    assert weights[1, 0].item() == pytest.approx(weights[2, 2].item())
    # the same r applies to negatives: the middle class, negative in image 0
    r_mid = (1 / 10) / (1 / 50 + 1 / 2)
    assert weights[0, 1].item() == pytest.approx(0.1 + sig(10 * (r_mid - 0.2)), rel=1e-6)


def test_negative_scale_tolerates_confident_negatives():
    # no bias, no focal factor, constant weight 1.5: only lambda differs from BCE
    common = dict(class_counts=COUNTS, n_items=N_ITEMS, alpha=1.0, beta=0.0, kappa=0.0, gamma=0)
    tolerant = DistributionBalancedLoss(neg_scale=2.0, **common)
    logits = torch.tensor([[-3.0, -1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    targets = torch.zeros_like(logits)
    per_element = tolerant.elementwise(logits, targets) / 1.5
    plain = BCELoss().elementwise(logits, targets)
    by_hand = [0.5 * math.log1p(math.exp(2 * z)) for z in (-3.0, -1.0, 0.0)]
    assert per_element[0].tolist() == pytest.approx(by_hand)
    assert (per_element < plain).all()
    (grad_tolerant,) = torch.autograd.grad(per_element[0, 0], logits)
    (grad_plain,) = torch.autograd.grad(plain[0, 0], logits)
    assert 0 < grad_tolerant[0, 0] < grad_plain[0, 0]  # sigmoid(2z) < sigmoid(z) for z < 0


def test_activation_is_the_shifted_sigmoid():
    loss = DistributionBalancedLoss(class_counts=COUNTS, n_items=N_ITEMS)
    priors = [n / N_ITEMS for n in COUNTS]
    expected = [
        [sig(Z[i][c] - 0.05 * math.log(1 / priors[c] - 1) / 2) for c in range(3)] for i in range(3)
    ]
    assert loss.activation(LOGITS).tolist() == [pytest.approx(row) for row in expected]
    assert loss.activation(LOGITS)[0, 2] < torch.sigmoid(LOGITS)[0, 2]  # a rare class starts low


def test_empty_and_universal_classes_stay_finite():
    loss = DistributionBalancedLoss(class_counts=[0, 100, 3], n_items=100)
    assert torch.isfinite(loss.nu).all()
    assert torch.isfinite(loss(LOGITS, TARGETS))


def test_registry_builds_db_and_gradients_are_finite_for_large_logits():
    resolved = resolve("losses", "db:gamma=0")
    assert resolved.params["gamma"] == 0 and resolved.params["neg_scale"] == 2.0
    counts = [120, 7, 0, 33]
    loss = resolved.build(class_counts=counts, n_items=200)
    assert isinstance(loss, DistributionBalancedLoss) and loss.gamma == 0
    focal = resolve("losses", "db").build(class_counts=counts, n_items=200)
    for built in (loss, focal):
        logits = torch.tensor(
            [[50.0, -50.0, 50.0, -50.0], [-50.0, 50.0, -50.0, 50.0], [0.3, -0.2, 50.0, -50.0]],
            requires_grad=True,
        )
        targets = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
        result = built(logits, targets)
        assert result.dtype == torch.float32 and torch.isfinite(result)
        result.backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all()
        assert logits.grad.abs().sum() > 0
        probs = built.activation(logits.detach())
        assert ((probs >= 0) & (probs <= 1)).all()
        assert built.decodes(probs).dtype == torch.bool
