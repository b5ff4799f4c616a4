"""The run options' one declaration: the commands' options generated from it, configuration
files checked against it, a run replayed from its own config.json, ``--json`` and ``--quiet``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

import cxrlt.workflows.run
from cxrlt.cli import app
from cxrlt.cli.output import print_json
from cxrlt.errors import CxrltError
from cxrlt.options import (
    DATA_OPTIONS,
    PER_RUN_OPTIONS,
    RUN_OPTIONS,
    RunOptions,
    flag,
    read_config_file,
)
from cxrlt.outputs.run_dir import RunDir
from cxrlt.pytest_plugin import TINY_DATA

TINY_RUN = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32", "--seed", "3"]


def command_params(name: str) -> dict:
    command = typer.main.get_command(app).commands[name]
    return {param.name: param for param in command.params}


def test_run_has_one_option_per_declared_field_with_its_help_and_default():
    params = command_params("run")
    for field in RUN_OPTIONS:
        param = params[field.name]
        assert flag(field.name) in param.opts
        assert param.help == field.metadata["help"] and param.help
        assert param.default == field.default
        assert param.rich_help_panel == field.metadata["group"]


def test_sweep_shares_every_run_option_but_those_that_name_one_run():
    params = command_params("sweep")
    for field in RUN_OPTIONS:
        if field.name in PER_RUN_OPTIONS:
            continue
        assert params[field.name].help
        if field.name not in ("loss", "arch", "post"):  # the grid's alternatives
            assert params[field.name].default == field.default
    assert "seed" not in params and "from_run" not in params and "overwrite" not in params
    assert params["post"].default == "none" and "alternatives" in params["post"].help


def test_prepare_takes_the_options_that_shape_the_decoded_images():
    params = command_params("prepare")
    assert set(DATA_OPTIONS) == {"dataset", "data", "size", "letterbox"}
    assert set(params) == {*DATA_OPTIONS, "workers"}
    assert params["size"].default == RunOptions().size


@pytest.fixture
def seen(monkeypatch):
    """The options `cxrlt run` would run with, instead of running."""
    seen: list[RunOptions] = []

    def fake_run(options, console, *, resume=False):
        seen.append(options)
        print("progress line")
        console.print("report")
        return None, None

    monkeypatch.setattr(cxrlt.workflows.run, "run", fake_run)
    return seen


def invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_a_toml_file_gives_options_and_the_command_line_overrides_it(tmp_path, seen):
    config = tmp_path / "study.toml"
    config.write_text('loss = "asl"\nvalid-frac = 1\nepochs = 3\nskip_bad = true\n')
    result = invoke("run", "--config", config, "--epochs", "5")
    assert result.exit_code == 0, result.output
    assert seen == [RunOptions(loss="asl", valid_frac=1.0, epochs=5, skip_bad=True)]


def test_a_json_file_gives_options_too(tmp_path, seen):
    config = tmp_path / "study.json"
    config.write_text(json.dumps({"arch": "convnext_atto", "backbone_lr": None, "out": "x"}))
    result = invoke("run", "--config", config)
    assert result.exit_code == 0, result.output
    assert seen == [RunOptions(arch="convnext_atto", out=Path("x"))]


def test_a_runs_config_json_gives_the_options_it_ran_with(tmp_path):
    config = tmp_path / "config.json"
    options = {"dataset": TINY_DATA, "size": 32, "out": "runs/x", "from_run": None}
    config.write_text(json.dumps({"cxrlt_version": "1", "status": "complete", "options": options}))
    assert read_config_file(config) == {**options, "out": Path("runs/x")}


def record(spec: str) -> dict:
    """A resolved part as config.json records it."""
    return {"name": spec.partition(":")[0], "spec": spec, "params": {}, "plugin": "p"}


def test_a_runs_config_json_replays_the_specs_it_resolved_to(tmp_path):
    """Each part comes back with every parameter the run used, so a default changed since
    (or a plugin upgraded) does not change the replay."""
    config = tmp_path / "config.json"
    options = {"loss": "asl", "arch": "resnet18", "post": "tta,temp-scale", "epochs": 2}
    specs = {
        "loss": record("asl:gamma_neg=2.0,gamma_pos=0.0,clip=0.05"),
        "arch": record("resnet18:pretrained=False,drop_path_rate=0.0"),
        "calibrator": record("temp-scale"),
        "thresholds": record("fixed:threshold=0.5"),
    }
    post = [record("tta:flips=True")]
    config.write_text(json.dumps({"options": options, "specs": specs, "post": post}))
    replayed = RunOptions(**read_config_file(config))
    assert replayed.loss == "asl:gamma_neg=2.0,gamma_pos=0.0,clip=0.05"
    assert replayed.arch == "resnet18:pretrained=False,drop_path_rate=0.0"
    assert replayed.post == "tta:flips=True,temp-scale,fixed:threshold=0.5"
    assert replayed.epochs == 2 and replayed.sampler == RunOptions().sampler


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("sweep.json", {"options": {}, "grid": {}, "cells": []}, "is a sweep's manifest"),
        ("config.json", {"options": {}, "evaluation": {}}, "written by `cxrlt evaluate`"),
        ("config.json", {"options": {}, "ensemble": {}}, "written by `cxrlt ensemble`"),
        ("empty.toml", "", "holds no options"),
        ("study.yaml", "epochs: 2\n", "give a TOML (.toml) or JSON (.json) file"),
        ("folder.toml", None, "is a folder"),
    ],
)
def test_a_file_that_is_not_run_options_is_named_for_what_it_is(tmp_path, name, content, message):
    config = tmp_path / name
    if content is None:
        config.mkdir()
    else:
        config.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CxrltError, match="--config") as error:
        read_config_file(config)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("valid_fraction = 0.1\n", "unknown option 'valid_fraction'; did you mean 'valid_frac'?"),
        ("epochs = 1.5\n", "option 'epochs' is 1.5, expected int"),
        ('augment = "yes"\n', "option 'augment' is 'yes', expected bool"),
        ("epochs = \n", "is not valid TOML"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_file_and_key(tmp_path, seen, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = invoke("run", "--config", config)
    assert result.exit_code == 2
    assert message in result.output and str(config) in result.output.replace("\n", "")
    assert seen == []


def test_a_missing_config_file_is_named():
    with pytest.raises(CxrltError, match="no-such.toml: no such file"):
        read_config_file("no-such.toml")


def test_resume_refuses_a_config_file_it_would_ignore(tmp_path, seen):
    config = tmp_path / "c.toml"
    config.write_text("epochs = 2\n")
    result = invoke("run", "--resume", tmp_path, "--config", config)
    assert result.exit_code == 2 and "leave out --config" in result.output
    assert seen == []


def test_json_prints_the_run_and_its_metrics_alone_on_stdout(tmp_path, monkeypatch):
    (tmp_path / "metrics.json").write_text(json.dumps({"mAP": 0.25, "mAP_ci": [0.2, 0.3]}))

    def fake_run(options, console, *, resume=False):
        print("progress line")
        console.print("report")
        return RunDir(tmp_path, check=False), object()

    monkeypatch.setattr(cxrlt.workflows.run, "run", fake_run)
    result = invoke("run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "run": str(tmp_path),
        "metrics": {"mAP": 0.25, "mAP_ci": [0.2, 0.3]},
    }
    assert "progress line" in result.stderr and "report" in result.stderr


def test_json_output_turns_numpy_values_and_nan_into_plain_json(capsys):
    print_json({"seeds": np.int64(2), "mAP": np.float64("nan"), "run": Path("r"), "ci": np.ones(2)})
    assert json.loads(capsys.readouterr().out) == {
        "seeds": 2,
        "mAP": None,
        "run": "r",
        "ci": [1.0, 1.0],
    }


def test_quiet_prints_no_report_and_no_progress(seen):
    result = invoke("run", "--quiet")
    assert result.exit_code == 0
    assert "report" not in result.output and "progress line" not in result.output
    assert len(seen) == 1


def test_sweep_takes_every_shared_option_and_refuses_per_run_ones_in_a_file(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--dataset", TINY_DATA, "--ema", "0.5", "--valid-frac", "0.3", "--out", out]
    result = invoke(*args, "--print-commands")
    assert result.exit_code == 0, result.output
    assert "--ema 0.5" in result.output and "--valid-frac 0.3" in result.output
    config = tmp_path / "c.toml"
    config.write_text("seed = 2\n")
    result = invoke("sweep", "--config", config, "--out", out, "--print-commands")
    assert result.exit_code == 2 and "a sweep sets --seed per cell" in result.output


def test_options_import_no_torch():
    code = "import sys, cxrlt.options; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.slow
def test_a_runs_config_json_replays_it(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    result = invoke("run", *TINY_RUN, "--device", "cpu", "--out", first)
    assert result.exit_code == 0, result.output
    result = invoke("run", "--config", first / "config.json", "--out", second)
    assert result.exit_code == 0, result.output
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (first, second)]
    assert metrics[0] == metrics[1]
