import pytest
import torch
from cxrlt_template.head import MyHead

from cxrlt.testing import check_entry


def test_matches_hand_computation():
    head = MyHead(2, 1, hidden=2)
    with torch.no_grad():
        head.hidden.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        head.hidden.bias.zero_()
        head.out.weight.copy_(torch.tensor([[2.0, 3.0]]))
        head.out.bias.fill_(0.5)
    # features (1, 2): hidden (1, -2), after ReLU (1, 0); logit 2 * 1 + 3 * 0 + 0.5
    assert head(torch.tensor([[1.0, 2.0]])).item() == pytest.approx(2.5)


def test_keeps_the_head_contract():
    """(B, in_features) in, (B, n_classes) logits out, gradients, determinism, pickling."""
    check_entry("heads", "my-head:hidden=8")
