"""A run whose weights file is damaged or foreign: every command that loads it stops with a
message naming the file, and ``--from-run`` stops before it writes anything."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.synthetic import write_synthetic_cxr
from tests.helpers.refusal import refused

DAMAGED = "cannot be read as this run's weights"
FIX = "Restore it from where the run was made, or train the run again"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished run on a CXR-LT 2026 folder with test images."""
    root = tmp_path_factory.mktemp("weights")
    data = write_synthetic_cxr(root / "data", n_images=80, size=32, seed=2, n_test=6)
    out = root / "run"
    args = ["run", "--dataset", "cxr-lt-2026", "--data", str(data), "--no-pretrained"]
    args += ["--size", "32", "--epochs", "1", "--bs", "16", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, data


def truncated(run, tmp_path):
    copy = tmp_path / "truncated"
    shutil.copytree(run, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    return copy


def foreign(run, tmp_path):
    copy = tmp_path / "foreign"
    shutil.copytree(run, copy)
    save_file({"foo": torch.zeros(3)}, str(copy / "model.safetensors"))
    return copy


@pytest.mark.parametrize("damage", [truncated, foreign])
def test_predict(trained, tmp_path, damage):
    run, data = trained
    broken = damage(run, tmp_path)
    out = tmp_path / "submission.csv"
    refused(
        ["predict", broken, "--data", data, "--out", out],
        f"{broken / 'model.safetensors'} {DAMAGED}",
        FIX,
        absent=[out],
    )


@pytest.mark.parametrize("damage", [truncated, foreign])
def test_from_run_stops_before_writing(trained, tmp_path, damage):
    run, _ = trained
    broken = damage(run, tmp_path)
    out = tmp_path / "post"
    refused(
        ["run", "--from-run", broken, "--post", "temp-scale", "--out", out],
        DAMAGED,
        FIX,
        absent=[out],
        untouched=[broken],
    )


def test_evaluate(trained, tmp_path):
    run, data = trained
    broken = truncated(run, tmp_path)
    out = tmp_path / "evaluation"
    refused(
        ["evaluate", broken, "--dataset", "synthetic:n_images=160,size=32", "--out", out],
        DAMAGED,
        FIX,
        absent=[out / "valid_predictions.csv"],
    )


def test_predict_of_an_ensemble_with_a_damaged_member(trained, tmp_path):
    run, data = trained
    broken = truncated(run, tmp_path)
    ensemble = tmp_path / "ensemble"
    result = CliRunner().invoke(app, ["ensemble", str(run), str(broken), "--out", str(ensemble)])
    assert result.exit_code == 0, result.output  # an ensemble merges predictions only
    out = tmp_path / "submission.csv"
    refused(
        ["predict", ensemble, "--data", data, "--out", out],
        f"{broken / 'model.safetensors'} {DAMAGED}",
        absent=[out],
    )
