"""The plugin guide's "Write a plugin" steps as a newcomer follows them: copy and rename the
template with the guide's own commands, pip-install the copy, then list, block, train with its loss
and run its tests (the conformance kit among them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.registry import KINDS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugins" / "cxrlt-template"
CXRLT = Path(sys.executable).parent / "cxrlt"
# What the guide's rename commands make of the template's names.
PACKAGE, DIST, PLUGIN = "cxrlt_mine", "cxrlt-mine", "mine"


def bash_blocks(markdown: str, heading: str | None = None) -> list[str]:
    """The ```bash blocks of a markdown text, or of one ``## heading`` section of it."""
    if heading is not None:
        markdown = markdown.split(f"\n## {heading}\n", 1)[1]
        markdown = re.split(r"\n##+ ", markdown, maxsplit=1)[0]
    return re.findall(r"```bash\n(.*?)```", markdown, re.S)


def readme_steps() -> tuple[str, str]:
    """docs/plugins.md's "Write a plugin" commands: copy and rename, then install, train, test."""
    rename, use = bash_blocks((ROOT / "docs" / "plugins.md").read_text(), "Write a plugin")
    return rename, use


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder where ``plugins/`` is the checkout's, with the guide's rename steps run."""
    work = tmp_path_factory.mktemp("newcomer")
    (work / "plugins").symlink_to(ROOT / "plugins", target_is_directory=True)
    rename, _ = readme_steps()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", rename],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture(scope="module")
def plugin_env(workdir, tmp_path_factory) -> dict[str, str]:
    """pip-install the renamed copy into its own folder, put that on PYTHONPATH (the test suite
    leaves the venv alone and has no network, hence not the guide's ``pip install -e``)."""
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(workdir / "my-plugin"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}


def cxrlt(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CXRLT), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )


def test_readme_steps_are_the_ones_tested():
    """The guide's commands are those this module runs (rename) or stands in for (the rest),
    and the template's README gives the same ones."""
    rename, use = readme_steps()
    assert rename.startswith("cp -r plugins/cxrlt-template my-plugin\n")
    for command in (
        "pip install -e my-plugin",
        "cxrlt list losses",
        "cxrlt run --loss my-loss",
        "pytest my-plugin/tests",
    ):
        assert command in use
    assert bash_blocks((TEMPLATE / "README.md").read_text()) == [rename, use]


def test_rename_steps_leave_no_template_name(workdir):
    plugin = workdir / "my-plugin"
    packages = [p.name for p in plugin.iterdir() if (p / "__init__.py").is_file()]
    assert packages == [PACKAGE]
    pyproject = (plugin / "pyproject.toml").read_text()
    assert f'name = "{DIST}"' in pyproject
    assert f'{PLUGIN} = "{PACKAGE}.plugin"' in pyproject
    code = [plugin / "pyproject.toml", *plugin.glob(f"{PACKAGE}/*.py"), *plugin.glob("tests/*.py")]
    old_names = re.compile(r"cxrlt[-_]template|^template =", re.M)
    assert [p.name for p in code if old_names.search(p.read_text())] == []


def test_installed_plugin_is_listed_and_described(plugin_env):
    listed = json.loads(cxrlt(plugin_env, "list", "losses", "--json").stdout)
    [entry] = [row for row in listed if row["name"] == "my-loss"]
    assert (entry["plugin"], entry["target"]) == (PLUGIN, f"{PACKAGE}.loss:MyLoss")
    plugins = json.loads(cxrlt(plugin_env, "plugins", "--json").stdout)
    [info] = [row for row in plugins if row["name"] == PLUGIN]
    assert (info["version"], info["source"], info["hooks"], info["error"]) == (
        "0.1.0",
        DIST,
        sorted(f"register_{k}" for k in KINDS),
        None,
    )


def test_blocking_the_plugin_hides_its_entries(plugin_env):
    env = {**plugin_env, "CXRLT_BLOCK_PLUGINS": PLUGIN}
    listed = json.loads(cxrlt(env, "list", "losses", "--json").stdout)
    assert "bce" in {row["name"] for row in listed}
    assert "my-loss" not in {row["name"] for row in listed}


@pytest.mark.slow
def test_run_trains_with_the_plugin_loss(plugin_env, tmp_path):
    out = tmp_path / "run"
    result = cxrlt(
        plugin_env,
        "run",
        "--loss",
        "my-loss:epsilon=2.0",
        "--dataset",
        TINY_DATA,
        "--size",
        "32",
        "--epochs",
        "1",
        "--bs",
        "32",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loss = json.loads((out / "config.json").read_text())["specs"]["loss"]
    assert (loss["spec"], loss["plugin"], loss["version"], loss["target"]) == (
        "my-loss:epsilon=2.0",
        PLUGIN,
        "0.1.0",
        f"{PACKAGE}.loss:MyLoss",
    )


@pytest.mark.slow
def test_plugin_own_tests_pass(plugin_env, workdir):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "my-plugin/tests"],
        cwd=workdir,
        env=plugin_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    for test in (
        "test_matches_hand_computation",
        "test_keeps_the_loss_contract[my-loss]",
        "test_keeps_the_loss_contract[my-loss:epsilon=2.0]",
    ):
        assert re.search(rf"{re.escape(test)} PASSED", result.stdout), result.stdout[-3000:]
