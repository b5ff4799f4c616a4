"""Classifier heads against hand computations, and each head inside a CXRClassifier."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.model.backbone import timm_backbone
from cxrlt.model.heads import CosineHead, CSRAHead, MLDecoderHead
from cxrlt.model.network import CXRClassifier, backbone_head_splitter
from cxrlt.registry import resolve


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---- cosine -------------------------------------------------------------------------------


def test_cosine_by_hand():
    head = CosineHead(6, 4, scale=16.0)
    x = torch.randn(5, 6)
    w = head.weight.detach()
    expected = 16.0 * (x @ w.T) / (x.norm(dim=1, keepdim=True) * w.norm(dim=1))
    torch.testing.assert_close(head(x), expected)


def test_cosine_bounded_by_scale_and_scale_invariant():
    head = CosineHead(8, 3, scale=2.5)
    x = torch.randn(64, 8)
    logits = head(x)
    assert logits.abs().max() <= 2.5 + 1e-5
    torch.testing.assert_close(head(7.0 * x), logits)


# ---- csra ---------------------------------------------------------------------------------


def _scores(head: CSRAHead, tokens: torch.Tensor) -> torch.Tensor:
    """s_c^j = w_c . x_j by hand, shape (B, N, C)."""
    return torch.einsum("bnd,cd->bnc", tokens, head.classifier.weight.detach())


def test_csra_lam_zero_is_linear_on_average_pooled_features():
    head = CSRAHead(6, 4, lam=0.0)
    tokens = torch.randn(3, 10, 6)
    expected = tokens.mean(dim=1) @ head.classifier.weight.detach().T
    out = head(tokens)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, expected)


def test_csra_t1_by_hand():
    head = CSRAHead(5, 3, lam=0.3, temperature=1.0)
    tokens = torch.randn(2, 7, 5)
    s = _scores(head, tokens)
    weights = s.exp() / s.exp().sum(dim=1, keepdim=True)
    expected = s.mean(dim=1) + 0.3 * (weights * s).sum(dim=1)
    torch.testing.assert_close(head(tokens), expected)


def test_csra_large_temperature_approaches_max_and_inf_is_max():
    tokens = torch.randn(2, 9, 5)
    big = CSRAHead(5, 3, lam=1.0, temperature=1e4)
    inf = CSRAHead(5, 3, lam=1.0, temperature="inf")
    inf.load_state_dict(big.state_dict())
    s = _scores(big, tokens)
    expected = s.mean(dim=1) + s.amax(dim=1)
    torch.testing.assert_close(big(tokens), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(inf(tokens), expected)


def test_csra_multi_head_sums_paper_temperatures():
    head = CSRAHead(5, 3, lam=0.5, heads=2)
    tokens = torch.randn(2, 6, 5)
    w = head.classifier.weight.detach().view(2, 3, 5)
    s1, s2 = (torch.einsum("bnd,cd->bnc", tokens, w[h]) for h in range(2))
    t1 = s1.mean(1) + 0.5 * (s1.softmax(dim=1) * s1).sum(1)
    t_inf = s2.mean(1) + 0.5 * s2.amax(1)
    torch.testing.assert_close(head(tokens), t1 + t_inf)


def test_csra_rejects_temperature_with_several_heads():
    with pytest.raises(CxrltError, match="temperature"):
        CSRAHead(5, 3, heads=4, temperature=2.0)


# ---- ml-decoder ---------------------------------------------------------------------------


def test_ml_decoder_shape_with_uneven_groups_and_gradients():
    head = MLDecoderHead(12, 30, n_groups=8, dim=16, heads=2)
    assert head.group_weight.shape == (8, 16, 4)  # ceil(30 / 8) logits per group
    tokens = torch.randn(3, 5, 12)
    out = head(tokens)
    assert out.shape == (3, 30)
    out.sum().backward()
    for name in ("queries", "group_weight", "bias", "embed.0.weight"):
        grad = head.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    for p in head.layers.parameters():
        assert p.grad is not None


def test_ml_decoder_depends_on_input_and_fixed_queries_are_a_buffer():
    head = MLDecoderHead(12, 5, dim=16, heads=4, dropout=0.0).eval()
    a, b = head(torch.randn(2, 5, 12)), head(torch.randn(2, 5, 12))
    assert not torch.allclose(a, b)
    assert not torch.allclose(a[0], a[1])
    fixed = MLDecoderHead(12, 5, dim=16, heads=4, learn_queries=False)
    assert "queries" in dict(fixed.named_buffers())
    assert "queries" not in dict(fixed.named_parameters())
    assert fixed.queries.shape == (5, 16)  # n_groups=0: min(n_classes, 100)


def test_ml_decoder_rejects_dim_not_divisible_by_heads():
    with pytest.raises(CxrltError, match="multiple of heads"):
        MLDecoderHead(12, 5, dim=10, heads=4)


# ---- registry and network -----------------------------------------------------------------


def test_registry_builds_heads_with_params():
    head = resolve("heads", "csra:lam=0.2").build(in_features=8, n_classes=3)
    assert isinstance(head, CSRAHead) and head.lam == 0.2
    resolved = resolve("heads", "csra:temperature=inf")
    assert resolve("heads", str(resolved.spec)).params == resolved.params  # as runs record it
    assert resolved.build(in_features=8, n_classes=3).temperatures == (math.inf,)
    assert resolve("heads", "cosine:scale=30").build(in_features=8, n_classes=3).scale == 30
    with pytest.raises(CxrltError, match="heads"):
        resolve("heads", "csra:heads=3")


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return timm_backbone("resnet18", in_chans=1)


@pytest.mark.parametrize(
    "spec", ["linear", "cosine", "csra", "csra:heads=2", "ml-decoder:dim=32,heads=4"]
)
def test_each_head_in_a_classifier(resnet18: nn.Module, spec: str):
    head = resolve("heads", spec).build(in_features=resnet18.num_features, n_classes=5)
    model = CXRClassifier(resnet18, head)
    out = model(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    backbone_params, head_params = backbone_head_splitter(model)
    assert all(p.grad is not None for p in head_params)
    assert resnet18.conv1.weight.grad is not None
    assert {id(p) for p in head_params} == {id(p) for p in head.parameters()}
    assert len(backbone_params) + len(head_params) == len(list(model.parameters()))
    resnet18.zero_grad(set_to_none=True)


def test_spatial_head_gets_feature_map_tokens(resnet18: nn.Module):
    seen = []
    head = CSRAHead(resnet18.num_features, 2)
    head.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape))
    CXRClassifier(resnet18, head)(torch.rand(2, 1, 64, 64))
    assert seen == [(2, 4, resnet18.num_features)]  # a 2x2 map at 64 px


class _FixedFeatures(nn.Module):
    """A stand-in backbone whose forward_features returns a given tensor."""

    def __init__(self, features: torch.Tensor, output_fmt: str = "NCHW") -> None:
        super().__init__()
        self.features, self.output_fmt = features, output_fmt

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features


def test_tokens_from_nchw_nhwc_and_token_outputs():
    nchw = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2)  # (B, C, H, W)
    expected = torch.stack([nchw[:, :, i, j] for i in range(2) for j in range(2)], dim=1)
    head = CSRAHead(3, 1)
    images = torch.zeros(2, 1, 8, 8)
    torch.testing.assert_close(CXRClassifier(_FixedFeatures(nchw), head).tokens(images), expected)
    nhwc = _FixedFeatures(nchw.permute(0, 2, 3, 1), output_fmt="NHWC")
    torch.testing.assert_close(CXRClassifier(nhwc, head).tokens(images), expected)
    vit = _FixedFeatures(expected)
    torch.testing.assert_close(CXRClassifier(vit, head).tokens(images), expected)


def test_spatial_head_needs_forward_features():
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    CXRClassifier(backbone, CosineHead(4, 2))  # pooled heads are fine
    with pytest.raises(CxrltError, match="CSRAHead.*forward_features"):
        CXRClassifier(backbone, CSRAHead(4, 2))


def test_pooled_heads_get_the_pooled_width_where_timm_widens_it():
    """MobileNetV3 pools 576 channels into a 1024-wide vector: linear heads take 1024."""
    from cxrlt.model.build import head_input_width

    backbone = timm_backbone("mobilenetv3_small_100", in_chans=1)
    head = resolve("heads", "linear").build(
        in_features=head_input_width(backbone, spatial=False), n_classes=3
    )
    assert CXRClassifier(backbone, head)(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    assert head_input_width(backbone, spatial=True) == 576
