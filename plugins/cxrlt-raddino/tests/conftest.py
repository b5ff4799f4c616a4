"""The isolation of cxrlt's pytest plugin (loaded with cxrlt, entry point ``pytest11``):
generated data in a temporary cache, and plugins rebuilt for each test."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _cxrlt_cache(cxrlt_cache):
    pass


@pytest.fixture(autouse=True)
def _cxrlt_plugins(cxrlt_fresh_plugins):
    pass
