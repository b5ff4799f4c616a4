"""The post-training tests start from the session's tiny loaders and one-epoch weights
(``cxrlt_tiny_dls`` and ``cxrlt_trained`` of cxrlt.pytest_plugin), under shorter names."""

import pytest


@pytest.fixture
def dls(cxrlt_tiny_dls):
    return cxrlt_tiny_dls


@pytest.fixture
def trained(cxrlt_trained):
    return cxrlt_trained
