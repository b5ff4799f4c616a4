"""cxrlt-xrv: torchxrayvision backbones keep cxrlt's backbone contract, load their weights from
xrv's cache or a local file, fail offline with one clear message, and train and reload in a
tiny ``cxrlt run``. Nothing here uses the network: downloads are replaced by failures."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from cxrlt_xrv.backbone import _xrv  # the README's test command installs the plugin
from torch import nn

from cxrlt import plugins
from cxrlt.errors import CxrltError
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.registry import resolve
from cxrlt.testing import check_entry

TINY_RUN = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32"]
DENSENET_URL = (
    "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
    "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-"
    "seed0-best.pt"
)


@pytest.fixture
def offline(tmp_path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty xrv cache (HOME moved) and a download that fails as requests does offline;
    returns the URLs that were asked for."""
    import requests

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    asked: list[str] = []

    def no_network(url: str, filename: str) -> None:
        asked.append(url)
        raise requests.exceptions.ConnectionError(
            f"HTTPSConnectionPool(host='github.com', port=443): Max retries exceeded with url: "
            f"{url} (Caused by NameResolutionError: Failed to resolve 'github.com')"
        )

    monkeypatch.setattr(_xrv().utils, "download", no_network)
    return asked


def build(spec: str) -> nn.Module:
    torch.manual_seed(0)
    return resolve("backbones", spec).build(in_chans=1)


def densenet_with_statistics() -> nn.Module:
    """xrv's DenseNet, randomly initialised, with non-trivial BatchNorm statistics too."""
    torch.manual_seed(123)
    model = _xrv().models.DenseNet(weights=None)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
    return model


def xrv_resnet50_state() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict in the layout of xrv's ResNet-50 file (torchvision's
    resnet50 with a 1-channel stem and 18 outputs)."""
    import torchvision

    model = torchvision.models.resnet50(weights=None, num_classes=18)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model.state_dict()


# ---- registration and contract -------------------------------------------------------------


def test_plugin_module_imports_neither_torch_nor_xrv() -> None:
    code = (
        "import sys, cxrlt_xrv.plugin; "
        "print(sorted(m for m in ('torch', 'torchxrayvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_entries_are_registered_by_the_plugin_with_their_parameters() -> None:
    for name, weights in (
        ("xrv-densenet121", "densenet121-res224-all"),
        ("xrv-resnet50", "resnet50-res512-all"),
    ):
        entry = resolve("backbones", name).entry
        assert entry.plugin == "xrv"
        assert weights in entry.summary
        params = entry.params()
        assert list(params) == ["pretrained", "weights", "weights_path", "allow_pickle"]
        assert params["weights"].default == weights
        assert params["pretrained"].default is False
        assert params["weights_path"].default is None
        assert params["allow_pickle"].default is False


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xrv-densenet121", "xrv-resnet50"])
@pytest.mark.parametrize("params", ["pretrained=False", ""])
def test_conformance_kit_passes(name: str, params: str, offline: list[str]) -> None:
    check_entry("backbones", f"{name}:{params}" if params else name)
    assert offline == []  # neither touched the network


@pytest.mark.slow
@pytest.mark.parametrize(("name", "width"), [("xrv-densenet121", 1024), ("xrv-resnet50", 2048)])
def test_pooled_and_spatial_features_at_cxrlt_size(name: str, width: int) -> None:
    backbone = build(name).eval()
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        pooled = backbone(images)
        spatial = backbone.forward_features(images)
    assert backbone.num_features == width
    assert pooled.shape == (2, width)
    assert spatial.shape[:2] == (2, width) and spatial.ndim == 4
    assert spatial.shape[2] < 64  # the input was not resized to 224 / 512 px
    assert torch.allclose(spatial.mean(dim=(2, 3)), pooled, atol=1e-5)
    assert not hasattr(backbone, "classifier") and not hasattr(backbone, "op_threshs")


@pytest.mark.slow
def test_spatial_head_trains_on_the_feature_map() -> None:
    from cxrlt.model.build import build_model

    model = build_model(
        resolve("backbones", "xrv-densenet121"), resolve("heads", "csra"), n_classes=5
    )
    logits = model(torch.rand(2, 1, 32, 32))
    logits.sum().backward()
    assert logits.shape == (2, 5)
    assert model.backbone.features.conv0.weight.grad is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xrv-densenet121", "xrv-resnet50"])
def test_inside_a_classifier_the_network_sees_xrv_pixel_range(name: str) -> None:
    """CXRClassifier's normalisation is the identity for these backbones, and the module maps
    cxrlt's [0, 1] to xrv's [-1024, 1024]: black -1024, white 1024."""
    from cxrlt.model.heads import LinearHead
    from cxrlt.model.network import CXRClassifier

    backbone = build(name)
    model = CXRClassifier(backbone, LinearHead(backbone.num_features, 3)).eval()
    stem = backbone.features.conv0 if name == "xrv-densenet121" else backbone.model.conv1
    seen: list[torch.Tensor] = []
    stem.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    images = torch.zeros(2, 1, 32, 32)
    images[1] = 1.0
    images[0, 0, 0, 0] = 0.5
    with torch.no_grad():
        model(images)
    (x,) = seen
    assert float(x[0].min()) == -1024 and float(x[0, 0, 0, 0]) == 0
    assert bool((x[1] == 1024).all())


# ---- parameter errors ----------------------------------------------------------------------


def test_unknown_weights_name_lists_the_accepted_ones() -> None:
    with pytest.raises(CxrltError) as error:
        build("xrv-densenet121:weights=densenet121-res224-foo")
    message = str(error.value)
    assert "Unknown torchxrayvision weights 'densenet121-res224-foo'" in message
    assert "densenet121-res224-all, densenet121-res224-nih" in message
    assert "resnet50" not in message
    with pytest.raises(CxrltError, match=r"Did you mean 'densenet121-res224-nih'\?"):
        build("xrv-densenet121:weights=nih")
    with pytest.raises(CxrltError, match="Accepted: resnet50-res512-all."):
        build("xrv-resnet50:weights=densenet121-res224-all")


def test_other_channel_counts_are_refused() -> None:
    with pytest.raises(CxrltError, match="greyscale images only.*in_chans=3"):
        resolve("backbones", "xrv-resnet50").build(in_chans=3)


# ---- weights: local file, cache, offline ---------------------------------------------------


def assert_features_equal(backbone: nn.Module, saved: dict[str, torch.Tensor], prefix: str):
    state = backbone.state_dict()
    compared = 0
    for key, value in saved.items():
        if key.startswith(("classifier.", "fc.")):
            continue
        assert torch.equal(state[prefix + key], value), key
        compared += 1
    assert compared == len(state)  # every parameter and buffer came from the file


@pytest.mark.slow
def test_weights_path_round_trip_densenet_state_dict(tmp_path, offline) -> None:
    model = densenet_with_statistics()
    path = tmp_path / "densenet.pt"
    torch.save(model.state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a state dict is read safely: no pickle warning
        backbone = build(f"xrv-densenet121:pretrained=True,weights_path={path}")
    assert_features_equal(backbone, model.state_dict(), "")
    assert offline == []


def test_a_pickled_densenet_loads_with_allow_pickle_and_a_warning(tmp_path, offline) -> None:
    """A whole pickled model, as xrv's own DenseNet files are."""
    model = densenet_with_statistics()
    path = tmp_path / "densenet.pt"
    torch.save(model, path)
    with pytest.warns(UserWarning, match="unpickling runs any code the file holds"):
        backbone = build(f"xrv-densenet121:pretrained=True,weights_path={path},allow_pickle=True")
    assert_features_equal(backbone, model.state_dict(), "")
    assert offline == []


class Tattletale(nn.Linear):
    """A tiny module that, when unpickled, leaves a file at ``marker``: the code a pickled
    weights file can run."""

    marker: Path

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self.marker.touch()


@pytest.mark.parametrize("name", ["xrv-densenet121", "xrv-resnet50"])
def test_a_pickled_module_is_not_unpickled_without_allow_pickle(tmp_path, offline, name) -> None:
    path = tmp_path / "module.pt"
    Tattletale.marker = tmp_path / "unpickled"
    torch.save(Tattletale(2, 2), path)
    with pytest.raises(CxrltError) as error:
        build(f"{name}:pretrained=True,weights_path={path}")
    message = str(error.value)
    assert f"'{path}'" in message and "is a pickled module" in message
    assert "runs any code the file holds, so it was not loaded" in message
    assert f"'{name}:allow_pickle=True'" in message and f"'{name}:pretrained=False'" in message
    assert not Tattletale.marker.exists()

    with pytest.warns(UserWarning, match="allow_pickle=True"), pytest.raises(CxrltError):
        build(f"{name}:pretrained=True,weights_path={path},allow_pickle=True")
    assert Tattletale.marker.exists()  # allowed, the file's code ran: what the gate prevents


def test_weights_path_round_trip_resnet(tmp_path, offline) -> None:
    saved = xrv_resnet50_state()
    path = tmp_path / "resnet.pt"
    torch.save(saved, path)
    backbone = build(f"xrv-resnet50:pretrained=True,weights_path={path}")
    assert_features_equal(backbone, saved, "model.")
    assert offline == []


def test_xrv_cache_is_used_without_network(offline, monkeypatch, tmp_path) -> None:
    cache = tmp_path / "home" / ".torchxrayvision" / "models_data"
    cache.mkdir(parents=True)
    model = _xrv().models.DenseNet(weights=None)
    torch.save(model, cache / DENSENET_URL.rsplit("/", 1)[1])
    with pytest.warns(UserWarning, match="allow_pickle=True"):
        backbone = build("xrv-densenet121:pretrained=True,allow_pickle=True")
    assert_features_equal(backbone, model.state_dict(), "")
    assert offline == []


def test_offline_download_gives_one_clear_error(offline, tmp_path) -> None:
    with pytest.raises(CxrltError) as error:
        build("xrv-densenet121:pretrained=True")
    message = str(error.value)
    folder = str(tmp_path / "home" / ".torchxrayvision" / "models_data")
    assert offline == [DENSENET_URL]
    assert "'densenet121-res224-all'" in message and "ConnectionError" in message
    assert DENSENET_URL in message and folder in message
    assert "'xrv-densenet121:weights_path=/path/to/" in message
    assert "'xrv-densenet121:pretrained=False'" in message
    assert "\n" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_missing_weights_path_names_the_file_and_the_fix(offline, tmp_path) -> None:
    missing = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(CxrltError) as error:
        build(f"xrv-resnet50:pretrained=True,weights_path={missing}")
    message = str(error.value)
    assert f"'{missing}'" in message and "does not exist" in message
    assert "resnet50-res512-all" in message and "pretrained=False" in message
    assert offline == []


def test_corrupt_or_foreign_weights_file_is_refused(offline, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CxrltError, match="cannot be loaded .*incomplete or not a torchxrayvision"):
        build(f"xrv-densenet121:pretrained=True,weights_path={corrupt}")
    foreign = tmp_path / "resnet.pt"
    torch.save(xrv_resnet50_state(), foreign)
    with pytest.raises(CxrltError, match="does not hold 'xrv-densenet121' weights"):
        build(f"xrv-densenet121:pretrained=True,weights_path={foreign}")


def test_without_pretrained_neither_network_nor_weights_file_is_touched(offline, tmp_path):
    """What prediction does: the run's spec with pretrained=False, its weights_path kept."""
    from cxrlt.prediction import backbone_without_weights

    missing = tmp_path / "gone.pt"
    spec = f"xrv-densenet121:pretrained=True,weights=densenet121-res224-nih,weights_path={missing}"
    resolved = backbone_without_weights(spec)
    assert resolved.params["pretrained"] is False
    assert resolved.build(in_chans=1).num_features == 1024
    assert offline == []


# ---- a tiny run, and its reload ------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from typer.testing import CliRunner

    from cxrlt.cli import app

    plugins.reset()
    out = tmp_path_factory.mktemp("runs") / "xrv"
    result = CliRunner().invoke(
        app, ["run", *TINY_RUN, "--arch", "xrv-densenet121", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_tiny_run_completes_and_records_the_plugin(run_dir) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["status"] == "complete"
    arch = config["specs"]["arch"]
    assert arch["name"] == "xrv-densenet121"
    assert arch["plugin"] == "xrv" and arch["version"] == "0.1.0"
    assert arch["target"] == "cxrlt_xrv.backbone:xrv_densenet121"
    assert arch["params"]["pretrained"] is False  # the embedded data trains from scratch
    assert arch["params"]["weights"] == "densenet121-res224-all"


@pytest.mark.slow
def test_reloaded_run_reproduces_its_logits(run_dir) -> None:
    from cxrlt.testing import check_run_reloads

    check_run_reloads(run_dir, TINY_DATA, size=32)
