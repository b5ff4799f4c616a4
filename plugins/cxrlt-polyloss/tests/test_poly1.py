"""The plugin's own tests: the loss against a hand computation."""

import math

import pytest
import torch
from cxrlt_polyloss.loss import Poly1Loss


def test_poly1_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    p = [0.5, 1 / (1 + math.exp(-2.0))]
    # positive: -log(0.5) + 0.5 * (1 - 0.5); negative: -log(1 - p1) + 0.5 * p1
    expected = ((-math.log(p[0]) + 0.5 * 0.5) + (-math.log(1 - p[1]) + 0.5 * p[1])) / 2
    assert Poly1Loss(epsilon=0.5)(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_poly1_with_zero_epsilon_is_bce():
    logits, targets = torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert Poly1Loss(epsilon=0.0)(logits, targets).item() == pytest.approx(bce.item())
