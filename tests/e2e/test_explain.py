"""``cxrlt explain`` and ``cxrlt report --explain`` on a run trained by ``cxrlt run`` on the
embedded data, test-time augmentation included; bad input refused before any model work."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrlt.cli import app
from tests.helpers.refusal import refused

pytest.importorskip("pytorch_grad_cam")

DATA = "synthetic:n_images=120,size=32"
RUN = ["--dataset", DATA, "--size", "64", "--epochs", "1", "--bs", "32", "--arch", "resnet18"]


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    invoke("run", *RUN, "--post", "tta:scales=[0.9]", "--out", out)
    return out


@pytest.fixture(scope="module")
def images(run):
    """Two of the run's validation images, by path."""
    from cxrlt.registry import resolve

    ids = pd.read_csv(run / "valid_predictions.csv")["ImageID"][:2]
    frame = resolve("datasets", DATA).build().frame.set_index("ImageID")
    return [frame.loc[name, "path"] for name in ids]


@pytest.mark.slow
def test_explain_writes_an_overlay_per_image_and_class(run, images, tmp_path):
    out = tmp_path / "cams"
    result = invoke("explain", run, *images, "--classes", "Nodule,Mass", "--out", out)
    assert "4 overlays of 2 images written" in " ".join(result.output.split())
    index = pd.read_csv(out / "explanations.csv")
    assert index["class"].tolist() == ["Nodule", "Mass"] * 2
    for file in index["file"]:
        with Image.open(out / file) as png:
            assert png.format == "PNG" and png.size == (64, 64)
    assert index["probability"].between(0, 1).all()


@pytest.mark.slow
def test_report_adds_the_grid_of_the_rarest_classes(run, tmp_path):
    result = invoke("report", run, "--explain", "2", "--out", tmp_path)
    assert "explanations.png" in result.output
    with Image.open(tmp_path / "explanations.png") as png:
        assert png.format == "PNG"


@pytest.mark.slow
def test_bad_input_exits_2_before_any_model_work(run, images, tmp_path):
    out = tmp_path / "cams"
    refused(
        ["explain", run, tmp_path / "missing.png", "--out", out],
        "missing.png does not exist",
        absent=[out],
    )
    refused(
        ["explain", run, *images, "--classes", "Elbow", "--out", out],
        "Unknown class 'Elbow'",
        "The run's classes are",
        absent=[out],
    )
    refused(["explain", tmp_path, *images, "--out", out], "config.json", absent=[out])
    refused(["report", run, "--explain", "-1", "--out", out], "--explain takes a number")


@pytest.mark.slow
def test_the_installed_command_refuses_a_missing_run_with_exit_code_2(tmp_path):
    image = tmp_path / "a.png"
    Image.new("L", (8, 8)).save(image)
    done = subprocess.run(
        [sys.executable, "-m", "cxrlt", "explain", tmp_path / "nowhere", image],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert "nowhere" in done.stderr + done.stdout
