"""Recipes: named files of run options, each value with its source, read without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.cli.train import run_options
from cxrlt.errors import CxrltError
from cxrlt.options import RunOptions, read_config_file, read_recipe
from cxrlt.registry import registry
from cxrlt.testing import check_entry

BUILT_IN = [entry.name for entry in registry("recipes").entries if entry.plugin.startswith("cxrlt")]


def test_both_winning_setups_are_built_in():
    assert {"founding-paper", "cxr-lt-2026-winner"} <= set(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_option_of_a_recipe_names_its_source(name):
    recipe = read_recipe(name)
    assert recipe.description
    assert set(recipe.sources) == set(recipe.options)
    RunOptions(**recipe.options)  # every value is of its option's type


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_spec_of_a_recipe_resolves_and_builds(name):
    check_entry("recipes", name)


def test_a_recipe_naming_an_unknown_loss_breaks_the_contract(cxrlt_fake_plugin, tmp_path):
    text = '[options]\nloss = "ldam-drv"\n[sources]\nloss = "assumed: a typo"\n'
    _recipe_plugin(cxrlt_fake_plugin, tmp_path, text)
    with pytest.raises(AssertionError, match="recipe 'mine' breaks .* Closest: ldam-drw"):
        check_entry("recipes", "mine")


def test_the_founding_paper_recipe_holds_its_setup():
    options = read_recipe("founding-paper").options
    assert options["arch"] == "convnext_large"
    assert options["loss"].startswith("ldam-drw")
    assert options["post"].split(",")[0] == "crt"


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_recipe_file_is_a_config_file(name):
    """The same file `--config` reads: the options come back unchanged."""
    resource = resources.files("cxrlt.recipes").joinpath(f"{name}.toml")
    with resources.as_file(resource) as path:
        assert read_config_file(path) == read_recipe(name).options


def test_an_unknown_recipe_names_the_closest_and_exits_2():
    result = CliRunner().invoke(app, ["run", "--recipe", "cxr-lt-2026-winer", "--epochs", "1"])
    assert result.exit_code == 2
    assert "Closest: cxr-lt-2026-winner" in " ".join(result.output.split())


def test_command_line_over_config_over_recipe_over_defaults(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("epochs = 3\nlr = 0.5\n")
    options = run_options({"epochs": 2}, config, None, "founding-paper")
    recipe = read_recipe("founding-paper").options
    assert options.epochs == 2  # command line
    assert options.lr == 0.5  # --config
    assert options.size == recipe["size"] != RunOptions().size  # recipe
    assert options.sampler == RunOptions().sampler  # default: the recipe leaves it
    assert run_options({}, None, None, "founding-paper") == RunOptions(**recipe)


def test_resume_refuses_a_recipe(tmp_path):
    with pytest.raises(CxrltError, match="leave out --recipe"):
        run_options({}, None, tmp_path, "founding-paper")


def _recipe_plugin(cxrlt_fake_plugin, tmp_path, text: str) -> None:
    (tmp_path / "mine.toml").write_text(text)
    cxrlt_fake_plugin(
        tmp_path.name.replace("_", "-"),  # a module of its own: the file differs per test
        f"""
        from pathlib import Path
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_recipes(register):
            register("mine", Path({str(tmp_path / "mine.toml")!r}), summary="A plugin's recipe.")
        """,
    )


def test_a_plugin_recipe_is_a_file_path(cxrlt_fake_plugin, tmp_path):
    text = 'description = "Short."\n[options]\nepochs = 4\n[sources]\nepochs = "assumed: test"\n'
    _recipe_plugin(cxrlt_fake_plugin, tmp_path, text)
    recipe = read_recipe("mine")
    assert (recipe.options, recipe.sources) == ({"epochs": 4}, {"epochs": "assumed: test"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[options]\nepochs = 4\nlr = 0.1\n[sources]\nepochs = "x"\n', "missing: lr"),
        ('[options]\nepochs = "four"\n[sources]\nepochs = "x"\n', "expected int"),
        ('[options]\nepoch = 4\n[sources]\nepoch = "x"\n', "did you mean 'epochs'"),
        ("[option]\nepochs = 4\n", "'option' is none of them"),
        ("[options\n", "is not valid TOML"),
    ],
)
def test_a_wrong_recipe_file_names_the_file_and_the_fix(cxrlt_fake_plugin, tmp_path, text, message):
    _recipe_plugin(cxrlt_fake_plugin, tmp_path, text)
    with pytest.raises(CxrltError, match="recipe 'mine'") as raised:
        read_recipe("mine")
    assert message in str(raised.value) and "mine.toml" in str(raised.value)


def test_show_prints_every_option_with_its_value_and_source():
    shown = CliRunner().invoke(app, ["show", "recipe", "cxr-lt-2026-winner", "--json"])
    assert shown.exit_code == 0, shown.output
    recipe = read_recipe("cxr-lt-2026-winner")
    assert json.loads(shown.output)["options"] == {
        name: {"value": value, "source": recipe.sources[name]}
        for name, value in recipe.options.items()
    }
    table = CliRunner().invoke(app, ["show", "recipe", "founding-paper"], terminal_width=400)
    assert "--arch" in table.output and "convnext_large" in table.output
    assert "arXiv 2603.02294, abstract: ConvNeXt-Large" in table.output
    assert "assumed" in table.output


def test_show_reads_a_recipe_without_importing_torch():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom cxrlt.cli import app\n"
        "result = CliRunner().invoke(app, ['show', 'recipe', 'founding-paper'])\n"
        "assert result.exit_code == 0, result.output\nprint('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
