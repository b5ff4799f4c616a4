"""Foundation backbones: the input pre-processing pinned per model (read from timm's
pretrained_cfg or declared by the backbone, applied in the model, restorable from a record),
timm models from a local folder (``local-dir:``), and hub names failing offline with the ways
out. Nothing here uses the network."""

from __future__ import annotations

from statistics import fmean

import pytest
import torch
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.model.backbone import input_and_licence
from cxrlt.model.build import build_model, input_preprocessing
from cxrlt.model.heads import LinearHead
from cxrlt.model.network import CXRClassifier
from cxrlt.model.preprocessing import Normalise, Preprocessing, preprocessing_of
from cxrlt.registry import resolve

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Declared(nn.Module):
    """A backbone that declares its input, as plugin backbones do; its features are its input."""

    num_features = 3

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.preprocessing = preprocessing

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))


def test_normalise_scales_repeats_channels_and_standardises():
    p = Preprocessing((0.2, 0.5, 0.8), (0.1, 0.2, 0.4), in_chans=3, input_range=(-1.0, 3.0))
    images = torch.rand(2, 1, 4, 4)
    out = Normalise(p)(images)
    assert out.shape == (2, 3, 4, 4)
    for c in range(3):
        expected = (images[:, 0] * 4 - 1 - p.mean[c]) / p.std[c]
        torch.testing.assert_close(out[:, c], expected)


def test_timm_models_get_their_pretrained_statistics_averaged_for_greyscale():
    backbone = resolve("backbones", "resnet18:pretrained=False").build(in_chans=1)
    p = preprocessing_of(backbone)
    assert p.in_chans == 1 and p.input_size == 224
    assert p.mean == pytest.approx((fmean(IMAGENET_MEAN),))
    assert p.std == pytest.approx((fmean(IMAGENET_STD),))
    assert "resnet18" in p.source


def test_a_declared_preprocessing_wins_and_a_pinned_one_wins_over_both():
    declared = Preprocessing((0.5,), (0.25,), in_chans=3, source="declared")
    model = CXRClassifier(_Declared(declared), LinearHead(3, 2))
    assert model.preprocessing == declared
    pinned = Preprocessing((0.0,), (1.0,), in_chans=3, input_range=(0.0, 2.0))
    model = CXRClassifier(_Declared(declared), nn.Identity(), pinned)
    images = torch.rand(2, 1, 5, 5)
    torch.testing.assert_close(model(images), (images * 2).mean(dim=(2, 3)).expand(2, 3))


def test_build_model_pins_the_record_a_run_saved():
    arch, head = resolve("backbones", "resnet18:pretrained=False"), resolve("heads", "linear")
    trained = build_model(arch, head, 3)
    assert input_preprocessing(arch) == trained.preprocessing  # what the config records
    record = trained.preprocessing.to_dict()
    changed = Preprocessing.from_dict({**record, "mean": [0.3]}, "config.json")
    rebuilt = build_model(arch, head, 3, preprocessing=changed)
    assert Preprocessing.from_dict(record, "config.json") == trained.preprocessing
    assert rebuilt.preprocessing.mean == (0.3,)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"mean": (0.5, 0.5), "std": (0.2,)}, "mean needs one value or one per channel"),
        ({"mean": (0.5,), "std": (0.0,)}, "std must be positive"),
        ({"mean": (0.5,), "std": (0.2,), "input_range": (1.0, 0.0)}, "low < high"),
    ],
)
def test_an_invalid_record_says_what_is_wrong(fields, problem):
    with pytest.raises(CxrltError, match=problem):
        Preprocessing(**fields)


def test_an_unreadable_record_names_its_file():
    with pytest.raises(CxrltError, match="config.json is not readable"):
        Preprocessing.from_dict({"std": [0.2]}, "runs/x/config.json")


@pytest.fixture
def timm_folder(tmp_path):
    """A tiny timm model saved in timm's hub format, with its own statistics."""
    import timm
    from timm.models._hub import save_for_hf

    model = timm.create_model("test_resnet", num_classes=0)
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.1, 0.2, 0.3), "std": (0.5,) * 3}
    save_for_hf(model, str(tmp_path), safe_serialization=True)
    return tmp_path, model


def test_a_local_timm_folder_loads_its_weights_and_its_preprocessing(timm_folder):
    folder, saved = timm_folder
    arch = resolve("backbones", f"local-dir:{folder}:pretrained=True")
    assert arch.entry.summary == "timm model from a local folder"
    backbone = arch.build(in_chans=3)
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(backbone.state_dict()[name], tensor)
    assert preprocessing_of(backbone).mean == pytest.approx((0.2,))
    assert preprocessing_of(backbone).std == pytest.approx((0.5,))


def test_a_missing_local_folder_names_the_fix(tmp_path):
    with pytest.raises(CxrltError, match="does not exist.*timm's format"):
        resolve("backbones", f"local-dir:{tmp_path / 'nope'}").build(in_chans=1)
    with pytest.raises(CxrltError, match="has no config.json"):
        resolve("backbones", f"local-dir:{tmp_path}").build(in_chans=1)


def test_a_hub_name_offline_names_the_ways_out(tmp_path, monkeypatch):
    """Even without pretrained weights a hub model's architecture comes from the hub."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    arch = resolve("backbones", "hf-hub:timm/resnet18.a1_in1k:pretrained=False")
    assert arch.entry.summary == "timm model from the Hugging Face hub"
    with pytest.raises(CxrltError, match="local-dir:DIR.*HF_HOME"):
        arch.build(in_chans=1)


def test_show_lines_give_the_input_and_the_licence():
    lines = input_and_licence("resnet18")
    assert lines[0].startswith("input: [0, 1] -> [0, 1], 1 channel(s), mean 0.449")
    assert lines[1] == "licence: apache-2.0"
