"""pytest fixtures for suites that test cxrlt or a cxrlt plugin, loaded through the ``pytest11``
entry point of cxrlt's distribution: any pytest session where cxrlt is installed has them.

Nothing here is autouse, and nothing imports torch until a fixture that needs it runs, so the
plugin costs other projects nothing. A suite turns on the isolation it wants in its
``conftest.py``::

    @pytest.fixture(autouse=True, scope="session")  # session: before module fixtures run
    def _cxrlt_cache(cxrlt_cache):
        pass


    @pytest.fixture(autouse=True)
    def _cxrlt_plugins(cxrlt_fresh_plugins):
        pass

It registers one marker, ``slow`` (cxrlt's convention, so that a plugin's suite has the same
fast loop, ``pytest -m "not slow"``), and these fixtures:

- ``cxrlt_cache`` (session): ``CXRLT_CACHE_DIR`` points at a temporary folder (returned), so
  generated data sets never reach the user's cache.
- ``cxrlt_fresh_plugins``: the plugin environment variables are unset and the plugin manager
  is rebuilt before and after the test, so it sees the plugins of its own ``sys.path``.
- ``cxrlt_fake_plugin``: a function ``install(name, source, *, dist=None)`` that makes
  ``source`` a module findable through a real ``cxrlt`` entry point (a dist-info on
  ``sys.path``, for this test only).
- ``cxrlt_tiny_dls`` (session): loaders of :data:`TINY_DATA` (32 pixels, batches of 32, CPU).
- ``cxrlt_trained`` (session): a resnet18 + BCE model's ``state_dict`` after one epoch on
  ``cxrlt_tiny_dls``; load it into a fresh learner, never change it in place.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TINY_DATA = "synthetic:n_images=160,size=32"
"""The embedded synthetic data set at its smallest useful size (generated in a few seconds)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes more than a second or two (left out by -m 'not slow')"
    )


@pytest.fixture(scope="session")
def cxrlt_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Generated data goes to a temporary cache, shared by the whole session."""
    path = tmp_path_factory.mktemp("cxrlt-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("CXRLT_CACHE_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture
def cxrlt_fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test sees the plugins of its own environment variables and ``sys.path``."""
    from cxrlt import plugins

    monkeypatch.delenv(plugins.LOAD_ENV, raising=False)
    monkeypatch.delenv(plugins.BLOCK_ENV, raising=False)
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def cxrlt_fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``install(plugin_name, source, *, dist=None)``: write ``source`` (dedented) as module
    ``fake_<plugin_name>`` with a dist-info declaring it as the ``cxrlt`` entry point
    ``plugin_name`` of distribution ``dist`` (version 1.2.3), on ``sys.path`` for this test."""
    from cxrlt import plugins

    def install(plugin_name: str, source: str, *, dist: str | None = None) -> None:
        module = f"fake_{plugin_name.replace('-', '_')}"
        dist = dist or f"fake-{plugin_name}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[cxrlt]\n{plugin_name} = {module}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        plugins.reset()

    return install


@pytest.fixture(scope="session")
def cxrlt_tiny_dls(cxrlt_cache: Path) -> Any:
    """Loaders of :data:`TINY_DATA`, shared by the session: a test that changes them must put
    them back."""
    from cxrlt.data.loaders import cxr_dataloaders

    return cxr_dataloaders(TINY_DATA, size=32, bs=32, device="cpu")


@pytest.fixture(scope="session")
def cxrlt_trained(cxrlt_tiny_dls: Any) -> dict[str, Any]:
    """Weights of resnet18 + BCE after one epoch on ``cxrlt_tiny_dls`` (seed 0), shared by the
    session: each test loads them into a learner of its own."""
    import torch

    from cxrlt.training.learner import cxr_learner

    torch.manual_seed(0)
    learn = cxr_learner(cxrlt_tiny_dls, "resnet18", "bce", pretrained=False)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    return {k: v.clone() for k, v in learn.model.state_dict().items()}
