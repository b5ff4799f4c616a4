"""cxrlt-raddino: RAD-DINO keeps cxrlt's backbone contract (CLS token pooled, patch tokens for
spatial heads), loads a local folder with its own pre-processing, fails offline with the ways
out, and trains and reloads in a tiny ``cxrlt run``. A tiny randomly initialised DINOv2 saved
to a temporary folder stands in for the real weights; nothing uses the network."""

from __future__ import annotations

import json

import pytest
import torch

from cxrlt import plugins
from cxrlt.errors import CxrltError
from cxrlt.model.build import backbone_on_meta, build_model
from cxrlt.model.preprocessing import preprocessing_of
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.registry import resolve
from cxrlt.testing import check_entry

TINY_RUN = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32"]


def _tiny_dinov2(folder):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
        patch_size=8, image_size=32,
    )  # fmt: skip
    model = Dinov2Model(config)
    model.save_pretrained(folder)
    processor = {"image_mean": [0.4, 0.4, 0.4], "image_std": [0.3, 0.3, 0.3], "crop_size": 32}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("rad-dino")
    _tiny_dinov2(path)
    return path


def test_the_entry_passes_the_conformance_kit(folder):
    check_entry("backbones", f"rad-dino:path={folder}")


def test_a_local_folder_loads_its_weights_and_its_preprocessing(tmp_path):
    saved = _tiny_dinov2(tmp_path)
    backbone = resolve("backbones", f"rad-dino:path={tmp_path},pretrained=True").build()
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(backbone.model.state_dict()[name], tensor)
    p = preprocessing_of(backbone)
    assert (p.in_chans, p.mean, p.std, p.input_size) == (3, (0.4,) * 3, (0.3,) * 3, 32)


def test_cls_token_is_pooled_and_patch_tokens_feed_spatial_heads(folder):
    arch = resolve("backbones", f"rad-dino:path={folder},pretrained=True")
    model = build_model(arch, resolve("heads", "csra"), 3).eval()
    images = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        normalised = model.normalise(images)
        tokens = model.backbone.model(pixel_values=normalised).last_hidden_state
        torch.testing.assert_close(model.backbone(normalised), tokens[:, 0])
        torch.testing.assert_close(model.tokens(normalised), tokens[:, 1:])  # 4 x 4 patches
        assert model(images).shape == (2, 3)
    assert tokens.shape == (2, 1 + 16, 16)


def test_without_a_folder_the_rad_dino_architecture_and_its_input_are_used():
    with torch.device("meta"):
        backbone = resolve("backbones", "rad-dino").build()
    assert backbone.num_features == 768 and backbone.model.config.patch_size == 14
    p = preprocessing_of(backbone)
    assert (p.in_chans, p.input_size, p.mean) == (3, 518, (0.5307,) * 3)


def test_a_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(CxrltError, match="does not exist.*hf download microsoft/rad-dino"):
        resolve("backbones", f"rad-dino:path={tmp_path / 'nope'}").build()


@pytest.mark.parametrize("device", ["cpu", "meta"])  # meta: cxrlt's check before a run
def test_offline_hub_download_names_the_ways_out(tmp_path, monkeypatch, device):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with torch.device(device), pytest.raises(CxrltError, match="path=DIR.*pretrained=False"):
        resolve("backbones", "rad-dino:pretrained=True").build()


def test_the_check_before_a_run_finds_the_weights_without_loading_them(folder):
    arch = resolve("backbones", f"rad-dino:path={folder},pretrained=True")
    backbone = backbone_on_meta(arch)
    assert next(backbone.parameters()).is_meta and backbone.num_features == 16


def test_show_gives_the_input_and_the_licence():
    from cxrlt.model.backbone import input_and_licence

    lines = input_and_licence("rad-dino")
    assert "3 channel(s), mean (0.5307, 0.5307, 0.5307)" in lines[0]
    assert lines[1].startswith("licence: MIT") and "huggingface.co/microsoft/rad-dino" in lines[1]


# ---- a tiny run, and its reload ------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, folder):
    from typer.testing import CliRunner

    from cxrlt.cli import app

    plugins.reset()
    out = tmp_path_factory.mktemp("runs") / "rad-dino"
    arch = f"rad-dino:path={folder}"
    result = CliRunner().invoke(app, ["run", *TINY_RUN, "--arch", arch, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_tiny_run_completes_and_records_the_plugin(run_dir, folder) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "complete"
    arch = config["specs"]["arch"]
    assert arch["plugin"] == "raddino" and arch["params"]["path"] == str(folder)


@pytest.mark.slow
def test_reloaded_run_reproduces_its_logits(run_dir) -> None:
    from cxrlt.testing import check_run_reloads

    check_run_reloads(run_dir, TINY_DATA, size=32)
