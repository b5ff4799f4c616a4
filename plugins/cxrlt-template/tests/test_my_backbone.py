import pytest
import torch
from cxrlt_template.backbone import MyBackbone

from cxrlt.testing import check_entry


def test_matches_hand_computation():
    backbone = MyBackbone(in_chans=1, width=1, depth=1)
    conv = backbone.features[0]
    torch.nn.init.ones_(conv.weight)
    torch.nn.init.zeros_(conv.bias)
    # A 4x4 image of ones, a 3x3 kernel of ones, zero padding: each output counts the pixels
    # its window covers: 4 at the 4 corners, 6 at the 8 edges, 9 at the 4 inner positions.
    features = backbone(torch.ones(1, 1, 4, 4))
    assert features.shape == (1, 1)
    assert features.item() == pytest.approx((4 * 4 + 8 * 6 + 4 * 9) / 16)


def test_feature_map_halves_after_the_first_block():
    features = MyBackbone(in_chans=1, width=8, depth=3).forward_features(torch.rand(2, 1, 32, 32))
    assert features.shape == (2, 8, 8, 8)


@pytest.mark.parametrize("spec", ["my-backbone", "my-backbone:width=8,depth=2"])
def test_keeps_the_backbone_contract(spec):
    """Greyscale images in, finite (B, num_features) features out."""
    check_entry("backbones", spec)
