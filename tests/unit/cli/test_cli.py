"""The CLI through Typer's CliRunner and as the installed ``cxrlt`` program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrlt.cli import app

runner = CliRunner()
CXRLT = Path(sys.executable).parent / "cxrlt"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_list_losses_as_json():
    result = invoke("list", "losses", "--json")
    assert result.exit_code == 0
    [bce] = [row for row in json.loads(result.output) if row["name"] == "bce"]
    assert bce["plugin"] == "cxrlt.builtins.losses"
    assert bce["target"] == "cxrlt.training.losses:BCELoss"


def test_list_with_wildcard_as_a_table():
    result = invoke("list", "backbone", "convnext*")
    assert result.exit_code == 0
    assert "convnext_large" in result.output and "resnet18" not in result.output


def test_show_gives_parameters_and_defaults():
    result = invoke("show", "backbone", "resnet18", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["params"]["pretrained"] == {"default": False, "required": False, "type": "bool"}
    assert "model_name" not in data["params"]  # bound by the entry, not the user's to set


def test_show_gives_a_data_sets_starting_weights_and_submission_formats():
    embedded = " ".join(invoke("show", "dataset", "synthetic").output.split())
    assert "backbones start from scratch" in embedded
    assert "submission format cxr-lt-2026 (id column ImageID)" in embedded
    real = " ".join(invoke("show", "dataset", "cxr-lt-2024").output.split())
    assert "backbones start from pretrained weights" in real
    assert "submission format cxr-lt-2024 (id column dicom_id)" in real


@pytest.mark.slow
def test_show_input_gives_a_backbones_pinned_preprocessing_and_licence():
    quick = " ".join(invoke("show", "backbone", "resnet18").output.split())
    assert "cxrlt show backbone resnet18 --input" in quick and "mean" not in quick
    text = " ".join(invoke("show", "backbone", "resnet18", "--input").output.split())
    assert "1 channel(s), mean 0.449, std 0.226" in text and "licence: apache-2.0" in text
    refused = invoke("show", "loss", "bce", "--input")
    assert refused.exit_code == 2 and "leave it out for other kinds" in refused.output


def test_plugins_lists_builtins_with_their_hooks():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["cxrlt.builtins.losses"]["hooks"] == ["register_losses"]
    assert rows["cxrlt.builtins.losses"]["source"] == "built-in"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["show", "loss", "bcx"], "Unknown loss 'bcx'. Closest: bce"),
        (["list", "lossez"], "Unknown kind 'lossez'. Did you mean 'losses'?"),
        (["show", "lost", "asl"], "Unknown kind 'lost'. Did you mean 'losses'?"),
        (["show", "thresold", "fixed"], "Did you mean 'thresholds'?"),
        (["run", "--loss", "bce:gamma=2"], "has no parameter 'gamma'"),
        (["run", "--arch", "resnet18:pretrained=2"], "must be bool"),
        (["run", "--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_errors_are_one_message_and_exit_code_2(args, fragment):
    result = invoke(*args)
    assert result.exit_code == 2
    assert fragment in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_bad_name_fails_before_any_data_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(tmp_path / "cache"))
    result = invoke("run", "--loss", "nope", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def _modules_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['cxrlt', *{args!r}]\n"
        "from cxrlt.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\nLOADED', sorted(m for m in ('torch', 'fastai', 'timm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.split("LOADED")[-1].strip().replace("'", '"')))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["list", "loss"],
        ["plugins"],
        ["run", "--help"],
        ["prepare", "--help"],
        ["show", "loss", "ldam-drw"],
        ["show", "post", "crt"],
        ["show", "backbone", "resnet18"],
    ],
)
def test_listing_commands_do_not_import_heavy_libraries(args):
    assert _modules_after(args) == set()


def test_installed_program_runs():
    env = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run(
        [str(CXRLT), "list", "datasets"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "synthetic" in result.stdout
    module = subprocess.run(
        [sys.executable, "-m", "cxrlt", "show", "loss", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == 2 and "Unknown loss 'nope'" in module.stderr
    assert "Traceback" not in module.stderr


def test_broken_plugin_warns_and_the_cli_keeps_working(cxrlt_fake_plugin):
    cxrlt_fake_plugin("broken", "raise ImportError('needs libfoo')")
    listed = invoke("list", "losses")
    assert listed.exit_code == 0 and "bce" in listed.output
    assert "plugin 'broken'" in listed.stderr and "failed to load" in listed.stderr
    shown = invoke("plugins", "--json")
    [row] = [r for r in json.loads(shown.stdout) if r["name"] == "broken"]
    assert "needs libfoo" in row["error"] and row["version"] == "1.2.3"


@pytest.mark.parametrize("param", ["n_images=0", "size=4", "imbalance=0.5"])
def test_out_of_range_dataset_parameters_are_refused(param, tmp_path):
    result = invoke("run", "--dataset", f"synthetic:{param}", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "of the dataset 'synthetic' must be at least" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()
