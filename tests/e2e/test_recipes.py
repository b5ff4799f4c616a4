"""Each built-in recipe runs end to end on the embedded data, shrunk on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.options import read_recipe
from cxrlt.registry import registry
from cxrlt.spec import parse_spec

# Tiny and offline: the embedded data at 32 px, a small backbone from random weights, and
# enough epochs for a deferred re-weighting that starts at epoch 5.
TINY = ["--dataset", "synthetic:n_images=160,size=32", "--size", "32", "--arch", "resnet18"]
TINY += ["--no-pretrained", "--epochs", "6", "--bs", "32", "--device", "cpu"]
BUILT_IN = [entry.name for entry in registry("recipes").entries if entry.plugin.startswith("cxrlt")]


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT_IN)
def test_a_recipe_runs_end_to_end_at_tiny_size(name, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--recipe", name, *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    recipe = read_recipe(name).options
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["size"] == 32 and config["options"]["arch"] == "resnet18"
    assert parse_spec(config["options"]["loss"]) == parse_spec(recipe["loss"])
    assert config["options"]["post"] == recipe["post"]
    assert json.loads((out / "metrics.json").read_text())
