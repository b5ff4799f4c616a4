"""The documentation: the site builds with warnings as errors, its reference pages are generated
from the code, and the README front page points only at files that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import tomllib

from cxrlt.options import RUN_OPTIONS, flag
from cxrlt.registry import KINDS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def reference_module() -> ModuleType:
    """docs/reference.py, the MkDocs hook that generates the reference pages."""
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_relative_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_the_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 200


def test_the_test_command_installs_the_documentation_tools():
    """CI runs the README's test command on a clean clone; the suite builds the site."""
    lines = README.read_text().splitlines()
    command = lines[lines.index("<!-- test command -->") + 2]
    extras = re.search(r"'\.\[([\w,-]+)\]'", command).group(1).split(",")
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = " ".join(" ".join(optional[extra]) for extra in extras)
    for package in ("mkdocs", "mkdocs-material", "mkdocstrings[python]", "pytest"):
        assert re.search(rf"(^|\s|\"){re.escape(package)}[<>=]", installed), package


def test_the_hooks_page_gives_every_hook_with_its_target_signature():
    page = reference_module().hooks_page()
    rows = {
        hook: [line for line in page.splitlines() if line.startswith(f"| [`{hook}(register)`]")]
        for hook in (f"register_{kind}" for kind in KINDS)
    }
    for hook, found in rows.items():
        assert len(found) == 1, f"the hooks page needs one table row for {hook}"
        if hook != "register_recipes":  # a recipe's target is a file, not called
            assert re.search(r"\| `f\([^`]*\)[^`]*` \|$", found[0]), found[0]
        assert f"\n## {hook}\n" in page


def test_the_cli_page_documents_every_run_option_and_command():
    page = reference_module().cli_page()
    sections = dict(re.findall(r"^## `cxrlt (\w+)`\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    assert {"run", "sweep", "prepare", "list", "show", "report", "compare"} <= set(sections)
    for field in RUN_OPTIONS:
        assert f"`{flag(field.name)}" in sections["run"], field.name


def test_the_run_options_page_lists_each_declared_option_once():
    page = reference_module().run_options_page()
    for field in RUN_OPTIONS:
        assert page.count(f"| `{field.name}` | `{flag(field.name)}` |") == 1, field.name


@pytest.mark.slow  # builds the whole site, ~4 s
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    losses = (tmp_path / "reference" / "registry" / "losses" / "index.html").read_text()
    for name in ("bce", "asl", "ldam-drw", "gamma_neg"):
        assert name in losses
    synonyms = (tmp_path / "reference" / "synonyms" / "index.html").read_text()
    assert "pneumoperitoneo" in synonyms
    api = (tmp_path / "reference" / "api" / "index.html").read_text()
    assert 'id="cxrlt.cxr_learner"' in api
