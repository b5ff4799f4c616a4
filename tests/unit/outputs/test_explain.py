"""Grad-CAM explanations: the layer chosen per backbone, tokens reshaped to maps, overlays of a
rebuilt run per image and class (a CNN and a ViT), the report's grid, and bad input refused
before any model work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.explain import (
    EXPLAIN_LAYER,
    INDEX,
    Explainer,
    explain_images,
    explanation_grid,
    feature_maps,
    overlay_name,
    rarest_top_images,
    short_names,
    target_layer,
)
from cxrlt.outputs.run_dir import RunDir
from cxrlt.outputs.run_schema import COMPLETE, DataRecord, EnsembleRecord, RunConfig, SpecRecord
from cxrlt.pytest_plugin import TINY_DATA

pytest.importorskip("pytorch_grad_cam")

# Each architecture at a size whose last maps are wider than one pixel (resnet18's layer4 is
# 1/32 of the input; test_vit, timm's tiny test ViT, takes 160 px in 16 px patches).
ARCHS = {"resnet18": 128, "test_vit": 160}


def timm_backbone(name: str) -> nn.Module:
    import timm

    return timm.create_model(name, num_classes=0, in_chans=1)


def write_run(folder: Path, dls, arch: str, size: int) -> Path:
    """A complete run written through RunDir from a randomly initialised model (seed 0): its
    config, weights, split and validation predictions."""
    from cxrlt.model.build import build_model
    from cxrlt.prediction import decode_test_images, predict_logits
    from cxrlt.registry import resolve

    specs = {
        "arch": resolve("backbones", f"{arch}:pretrained=False"),
        "head": resolve("heads", "linear"),
        "loss": resolve("losses", "bce"),
    }
    torch.manual_seed(0)
    model = build_model(specs["arch"], specs["head"], len(dls.classes))
    valid = dls.data.frame[dls.is_valid][["ImageID", "path"]].reset_index(drop=True)
    logits = predict_logits(
        model, decode_test_images(valid, size, letterbox=False, part=""), 16, "cpu"
    )
    run_dir = RunDir(folder)
    run_dir.start()
    run_dir.write_weights(model)
    run_dir.write_split(dls.split_table())
    targets = dls.data.labels[dls.is_valid]
    run_dir.write_predictions(
        valid["ImageID"], dls.classes, targets, logits, 1 / (1 + np.exp(-logits))
    )
    run_dir.write_config(
        RunConfig(
            cxrlt_version="test",
            status=COMPLETE,
            options={"dataset": TINY_DATA, "size": size, "letterbox": False, "loss": "bce"},
            specs={role: SpecRecord(**spec.to_dict()) for role, spec in specs.items()},
            data=DataRecord(tuple(dls.classes), tuple(dls.class_counts.tolist()), dls.n_train),
        )
    )
    return run_dir.path


@pytest.fixture(scope="module")
def runs(cxrlt_tiny_dls, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain")
    return {
        arch: write_run(root / arch, cxrlt_tiny_dls, arch, size) for arch, size in ARCHS.items()
    }


@pytest.fixture(scope="module")
def valid_images(cxrlt_tiny_dls) -> list[Path]:
    frame = cxrlt_tiny_dls.data.frame[cxrlt_tiny_dls.is_valid]
    return [Path(path) for path in frame["path"][:2]]


# ---- the layer and the reshape ------------------------------------------------------------------


def test_the_layer_is_a_cnns_last_stage_and_the_one_before_for_a_vit():
    resnet, vit = timm_backbone("resnet18"), timm_backbone("test_vit")
    assert target_layer(resnet) is resnet.layer4
    assert target_layer(vit) is vit.blocks[-2]  # the last block's patch tokens reach no logit


def test_a_declared_layer_wins_and_a_plain_cnn_falls_back_to_its_last_convolution():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten())
    assert target_layer(net) is net[1]
    setattr(net, EXPLAIN_LAYER, "0")
    assert target_layer(net) is net[0]
    setattr(net, EXPLAIN_LAYER, "nowhere")
    with pytest.raises(CxrltError, match="'nowhere'.*fix its explain_layer"):
        target_layer(net)
    with pytest.raises(CxrltError, match="Set its explain_layer"):
        target_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    net.num_prefix_tokens = 1  # a token model's only convolution is its patch embedding
    delattr(net, EXPLAIN_LAYER)
    with pytest.raises(CxrltError, match="Set its explain_layer"):
        target_layer(net)
    setattr(net, EXPLAIN_LAYER, net[1])  # the module itself
    assert target_layer(net) is net[1]


def test_tokens_become_maps_without_their_prefix_tokens():
    backbone = nn.Module()
    backbone.num_prefix_tokens = 1
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)
    maps = feature_maps(backbone)(tokens)
    assert maps.shape == (2, 3, 4, 4)
    assert torch.equal(maps[1, :, 2, 3], tokens[1, 1 + 2 * 4 + 3])  # row 2, column 3
    maps_in = torch.randn(2, 3, 4, 4)
    assert feature_maps(backbone)(maps_in) is maps_in
    with pytest.raises(CxrltError, match="not a square grid"):
        feature_maps(backbone)(torch.randn(2, 1 + 12, 3))


def test_the_rarest_trained_classes_get_their_top_scoring_rows():
    counts = np.array([50, 0, 3, 7, 3])
    scores = np.array(
        [[0.1, 0.9, 0.2, 0.8, 0.5], [0.3, 0.1, 0.7, 0.2, 0.4], [0.2, 0.5, 0.1, 0.9, 0.6]]
    )
    tops = rarest_top_images(counts, scores, n_classes=3, per_class=2)
    assert list(tops) == [2, 4, 3]  # no training positives: class 1 left out
    assert tops[2].tolist() == [1, 0] and tops[4].tolist() == [2, 0] and tops[3].tolist() == [2, 0]


def test_overlay_names_keep_folders_apart_and_drop_unsafe_characters():
    assert overlay_name("sub/img 1.png", "Pleural Effusion") == "sub_img_1__Pleural_Effusion.png"
    assert short_names(["/data/a/x.png", "/data/a/y.png"]) == ["x.png", "y.png"]
    assert short_names(["/data/a/x.png", "/data/b/x.png"]) == ["a/x.png", "b/x.png"]
    assert short_names(["x.png", "sub/y.png"]) == ["x.png", "sub/y.png"]


# ---- overlays of a rebuilt run ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_overlays_are_written_per_image_and_class_and_differ_between_classes(
    arch, runs, valid_images, cxrlt_tiny_dls, tmp_path
):
    from cxrlt.prediction import load_run

    classes = list(cxrlt_tiny_dls.classes[:2])
    index = explain_images(runs[arch], valid_images, tmp_path, classes=classes)
    assert index[["image", "class"]].values.tolist() == [
        [str(image), cls] for image in valid_images for cls in classes
    ]
    assert pd.read_csv(tmp_path / INDEX).equals(index)
    for file in index["file"]:
        with Image.open(tmp_path / file) as png:
            png.verify()
        with Image.open(tmp_path / file) as png:
            assert png.format == "PNG" and png.mode == "RGB" and png.size == (ARCHS[arch],) * 2
    run = load_run(runs[arch])
    image = np.asarray(Image.open(valid_images[0]).convert("L").resize((ARCHS[arch],) * 2))
    with Explainer(run) as explain:
        heatmaps = explain(image, [0, 1])
    assert heatmaps.shape == (2, ARCHS[arch], ARCHS[arch])
    assert heatmaps.max() > 0 and not np.allclose(heatmaps[0], heatmaps[1], atol=1e-3)


@pytest.mark.slow
def test_by_default_each_images_most_probable_classes_are_explained(runs, valid_images, tmp_path):
    from cxrlt.prediction import load_run

    index = explain_images(runs["resnet18"], valid_images[:1], tmp_path, top_k=2)
    probs = load_run(runs["resnet18"]).predict(valid_images[:1]).filter(like="prob:").iloc[0]
    top = probs.sort_values(ascending=False, kind="stable").index[:2].str.removeprefix("prob:")
    assert index["class"].tolist() == top.tolist()
    assert np.allclose(index["probability"], probs.sort_values(ascending=False)[:2], atol=1e-6)


@pytest.mark.slow
def test_the_grid_shows_the_rarest_classes_top_validation_images(runs, tmp_path):
    path = explanation_grid(runs["test_vit"], tmp_path / "grid.png", n_classes=2, per_class=3)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]  # 3 columns, 2 rows


# ---- bad input, refused before any model work ---------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was built before the input was checked")

    monkeypatch.setattr("cxrlt.explain.load_run", refuse)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"images": ["missing.png"]}, "missing.png does not exist"),
        ({"classes": ["Nodule", "Elbow"]}, "Unknown class 'Elbow'. The run's classes are"),
        ({"classes": ["Nodul"]}, "Unknown class 'Nodul'. Closest to 'Nodul': 'Nodule'"),
        ({"top_k": 0}, "top_k must be at least 1"),
    ],
)
def test_bad_input_is_refused_before_the_model_is_built(
    change, fragment, runs, valid_images, tmp_path, no_model
):
    arguments = {"images": valid_images, "classes": None, "top_k": 3} | change
    with pytest.raises(CxrltError, match=fragment):
        explain_images(runs["resnet18"], out=tmp_path, **arguments)
    assert not (tmp_path / INDEX).exists()


def test_a_folder_without_a_run_and_an_ensemble_are_refused(tmp_path, no_model):
    with pytest.raises(CxrltError, match="config.json"):
        explain_images(tmp_path, [tmp_path], tmp_path / "out")
    ensemble = RunDir(tmp_path / "ensemble", check=False)
    ensemble.write_config(
        RunConfig(status=COMPLETE, ensemble=EnsembleRecord(("/runs/a", "/runs/b"), "logit", (1, 1)))
    )
    with pytest.raises(CxrltError, match="is an ensemble: explain one of its member runs"):
        explain_images(ensemble.path, [tmp_path], tmp_path / "out")
