"""End to end: ``cxrlt run`` on tiny embedded data writes a complete, repeatable run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.labels import CXR_LT_2026_CLASSES
from cxrlt.pytest_plugin import TINY_DATA

TINY_RUN = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32", "--seed", "3"]


def cxrlt_run(*args: str):
    result = CliRunner().invoke(app, ["run", *TINY_RUN, *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = cxrlt_run("--out", str(out))
    assert "mAP" in result.output and "chance level" in result.output
    return out


def test_run_directory_holds_config_weights_log_predictions_metrics(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "log.csv",
        "valid_predictions.csv",
        "metrics.json",
        "metrics_per_class.csv",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]


def test_config_records_every_spec_with_plugin_and_version(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    specs = config["specs"]
    assert set(specs) == {"dataset", "sampler", "arch", "head", "loss", "thresholds"}
    assert config["post"] == []
    assert specs["loss"] == {
        "spec": "bce",
        "name": "bce",
        "params": {},
        "plugin": "cxrlt.builtins.losses",
        "version": "0.1.0",
        "target": "cxrlt.training.losses:BCELoss",
    }
    assert specs["dataset"]["params"]["n_images"] == 160
    assert specs["arch"]["spec"].startswith("resnet18:pretrained=False")
    assert config["data"]["classes"] == list(CXR_LT_2026_CLASSES)


def test_predictions_and_metrics_agree(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    predictions = pd.read_csv(run_dir / "valid_predictions.csv")
    assert len(predictions) == config["data"]["n_valid"]
    assert predictions.columns[0] == "ImageID"
    probs = predictions[[f"prob:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    per_class = pd.read_csv(run_dir / "metrics_per_class.csv", index_col="class")
    assert metrics["mAP"] == pytest.approx(per_class["AP"].mean())
    assert set(metrics["excluded"]) == set(per_class.index[per_class["n_pos"] == 0])
    log = pd.read_csv(run_dir / "log.csv")
    assert list(log["epoch"]) == [0] and "mAP" in log.columns


@pytest.mark.slow
def test_same_seed_gives_the_same_metrics(run_dir, tmp_path):
    cxrlt_run("--out", str(tmp_path / "again"))
    first = json.loads((run_dir / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first == second


def test_an_existing_run_is_not_overwritten_by_accident(run_dir):
    result = CliRunner().invoke(app, ["run", *TINY_RUN, "--out", str(run_dir)])
    assert result.exit_code == 2 and "--overwrite" in result.output


@pytest.mark.parametrize(
    ("dataset", "arch", "expected"),
    [
        ("synthetic", "resnet18", False),  # the first run trains offline from scratch
        ("cxr-lt-2026", "resnet18", True),  # real data starts from ImageNet weights
        ("cxr-lt-2026", "resnet18:pretrained=False", False),  # unless the spec says not to
    ],
)
def test_pretrained_weights_by_default_on_real_data_only(dataset, arch, expected):
    from cxrlt.options import RunOptions
    from cxrlt.workflows.specs import check_specs

    specs = check_specs(RunOptions(dataset=dataset, arch=arch))
    assert specs.arch.params["pretrained"] is expected
