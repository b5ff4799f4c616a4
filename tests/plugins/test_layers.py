"""The import contract in pyproject.toml (``[tool.importlinter]``): each layer imports only the
ones below it, and the core imports no torch. CI runs pytest, so this is where it is enforced."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts, on the ``cxrlt`` under ``package_parent``."""
    assert LINT_IMPORTS.exists(), "install the test extra: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_import_contracts():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        ("errors.py", "import cxrlt.cli", "cxrlt.errors -> cxrlt.cli"),
        ("training/events.py", "from cxrlt.outputs import run_dir", "cxrlt.training.events ->"),
        ("spec.py", "import torch", "cxrlt.spec -> torch"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, reported):
    copy = tmp_path / "cxrlt"
    shutil.copytree(ROOT / "cxrlt", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert reported in result.stdout.split("Broken contracts")[-1], result.stdout
