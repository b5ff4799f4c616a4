"""The plugin's own tests: the loss against a hand computation, and cxrlt's conformance kit
on the installed entry (run them after ``pip install -e .``: ``pytest tests``)."""

import math

import pytest
import torch
from cxrlt_template.loss import MyLoss

from cxrlt.testing import check_entry


def test_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    p = [0.5, 1 / (1 + math.exp(-2.0))]
    # positive: -log(0.5) + 0.5 * (1 - 0.5); negative: -log(1 - p1) + 0.5 * p1
    expected = ((-math.log(p[0]) + 0.5 * 0.5) + (-math.log(1 - p[1]) + 0.5 * p[1])) / 2
    assert MyLoss(epsilon=0.5)(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_zero_epsilon_is_bce():
    logits, targets = torch.randn(4, 3), torch.randint(0, 2, (4, 3)).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert MyLoss(epsilon=0.0)(logits, targets).item() == pytest.approx(bce.item())


@pytest.mark.parametrize("spec", ["my-loss", "my-loss:epsilon=2.0"])
def test_keeps_the_loss_contract(spec):
    """Finite values and gradients, mean reduction, pickling, probabilities in [0, 1], ..."""
    check_entry("losses", spec)
