"""cxrlt's pytest plugin (cxrlt/pytest_plugin.py): found through its ``pytest11`` entry point
by any pytest session where cxrlt is installed, cheap to load (no torch), and imposing nothing:
its fixtures are named, none autouse; it registers the ``slow`` marker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata

FIXTURES = (
    "cxrlt_cache",
    "cxrlt_fresh_plugins",
    "cxrlt_fake_plugin",
    "cxrlt_tiny_dls",
    "cxrlt_trained",
)


def test_the_entry_point_names_the_plugin_module():
    [entry] = [e for e in metadata.entry_points(group="pytest11") if e.name == "cxrlt"]
    assert entry.value == "cxrlt.pytest_plugin"


def test_a_foreign_project_gets_the_fixtures_and_nothing_else(tmp_path):
    """A project of its own (no conftest, no cxrlt settings) sees the fixtures listed; its
    tests run without torch loaded and with the environment untouched."""
    (tmp_path / "test_foreign.py").write_text(
        textwrap.dedent(
            """
            import os
            import sys

            import pytest

            def test_nothing_imposed():
                assert "torch" not in sys.modules
                assert "CXRLT_CACHE_DIR" not in os.environ

            def test_a_fixture_on_request(cxrlt_cache):
                assert os.environ["CXRLT_CACHE_DIR"] == str(cxrlt_cache)

            @pytest.mark.slow
            def test_left_out_of_the_fast_loop():
                raise AssertionError("selected")
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "CXRLT_CACHE_DIR"}
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    listed = subprocess.run(
        [*pytest, "--fixtures"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "cxrlt.pytest_plugin" in listed.stdout
    for name in FIXTURES:
        assert name in listed.stdout, name
    fast = [*pytest, "--strict-markers", "-m", "not slow"]  # the plugin registers "slow"
    ran = subprocess.run(fast, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 passed, 1 deselected" in ran.stdout


def test_the_fixtures_isolate(cxrlt_cache, cxrlt_fake_plugin):
    from cxrlt.registry import resolve

    assert os.environ["CXRLT_CACHE_DIR"] == str(cxrlt_cache)
    cxrlt_fake_plugin(
        "tiny",
        """
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_losses(register):
            register("tiny-loss", "cxrlt.training.losses:BCELoss")
        """,
    )
    assert resolve("losses", "tiny-loss").entry.plugin == "tiny"
