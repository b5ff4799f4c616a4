"""cxrlt's own suite turns on, for every test, the isolation its pytest plugin provides
(``cxrlt/pytest_plugin.py``, loaded through the ``pytest11`` entry point): generated data in a
temporary cache shared by the session, and plugins rebuilt from each test's own environment.
The shared fixtures themselves (``cxrlt_fake_plugin``, ``cxrlt_tiny_dls``, ``cxrlt_trained``)
live in the plugin; helpers shared by test modules live in ``tests/helpers/``."""

from __future__ import annotations

import os

import pytest

# One compute thread per test process unless the developer sets another. On two cores shared with
# anything else, torch's default threads spin against each other: `pytest -m "not slow"` took
# 224 s with them and 61 s with one, on the same loaded machine. Subprocesses (cxrlt run, the
# examples, torchrun) inherit it. Set before any test module imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _cxrlt_cache(cxrlt_cache):
    """Session scope, so that module fixtures which generate data see the temporary cache too."""


@pytest.fixture(autouse=True)
def _cxrlt_plugins(cxrlt_fresh_plugins):
    """Each test sees the plugins of its own environment variables and sys.path."""
