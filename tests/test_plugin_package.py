"""The separate plugin package: installed with pip, found by entry point, used by ``cxrlt run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_DATA

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "cxrlt-polyloss"
CXRLT = Path(sys.executable).parent / "cxrlt"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """pip-install the plugin into its own folder and put that folder on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
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
            str(PLUGIN),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}


def cxrlt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CXRLT), *args], env=env, capture_output=True, text=True, check=False)


def test_installed_plugin_is_listed_and_described(plugin_env):
    listed = json.loads(cxrlt(plugin_env, "list", "losses", "--json").stdout)
    [poly] = [row for row in listed if row["name"] == "poly1"]
    assert poly["plugin"] == "polyloss"
    plugins = json.loads(cxrlt(plugin_env, "plugins", "--json").stdout)
    [info] = [row for row in plugins if row["name"] == "polyloss"]
    assert (info["version"], info["source"], info["hooks"]) == (
        "0.1.0",
        "cxrlt-polyloss",
        ["register_losses"],
    )


def test_blocking_the_plugin_hides_its_entries(plugin_env):
    env = {**plugin_env, "CXRLT_BLOCK_PLUGINS": "polyloss"}
    listed = json.loads(cxrlt(env, "list", "losses", "--json").stdout)
    assert "poly1" not in {row["name"] for row in listed}


def test_run_trains_with_the_plugin_loss(plugin_env, tmp_path):
    out = tmp_path / "run"
    result = cxrlt(
        plugin_env,
        "run",
        "--loss",
        "poly1:epsilon=2.0",
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
    assert (loss["spec"], loss["plugin"], loss["version"]) == (
        "poly1:epsilon=2.0",
        "polyloss",
        "0.1.0",
    )


def test_plugin_own_tests_pass(plugin_env):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(PLUGIN / "tests")],
        env=plugin_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
