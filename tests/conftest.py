"""Shared fixtures: an isolated cache, fresh plugin state, and fake plugin packages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cxrlt import plugins

TINY_DATA = "synthetic:n_images=160,size=32"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated data goes to a temporary cache, shared by the whole session."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CXRLT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch: pytest.MonkeyPatch):
    """Each test sees the plugins of its own environment variables and sys.path."""
    monkeypatch.delenv(plugins.LOAD_ENV, raising=False)
    monkeypatch.delenv(plugins.BLOCK_ENV, raising=False)
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def install_fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make a module findable through a real ``cxrlt`` entry point (a dist-info on sys.path)."""

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


def exploding_loss_plugin(name: str, when: str) -> str:
    """Source of a plugin whose loss ``name`` turns NaN while ``when`` holds (a Python
    expression over ``self.epoch`` and ``os``, evaluated at each epoch's start)."""
    return f"""
    import os
    from fastai.callback.core import Callback
    from cxrlt.hookspecs import hookimpl
    from cxrlt.training.losses import BCELoss

    class Poison(Callback):
        def __init__(self, loss):
            self.loss_module = loss

        def before_epoch(self):
            self.loss_module.poisoned = {when}

    class ExplodingLoss(BCELoss):
        poisoned = False

        def elementwise(self, logits, targets):
            loss = super().elementwise(logits, targets)
            return loss * float("nan") if self.poisoned else loss

        def callbacks(self):
            return [Poison(self)]

    @hookimpl
    def register_losses(register):
        register("{name}", f"{{__name__}}:ExplodingLoss")
    """


@pytest.fixture(scope="module")
def dls():
    """Loaders of the tiny embedded data set (modules that need others define their own)."""
    from cxrlt.data.loaders import cxr_dataloaders

    return cxr_dataloaders(TINY_DATA, size=32, bs=32, device="cpu")


@pytest.fixture(scope="module")
def trained(dls):
    """Weights after one epoch on ``dls``, shared: each test starts a learner from them."""
    import torch

    from cxrlt.training.learner import cxr_learner

    torch.manual_seed(0)
    learn = cxr_learner(dls, "resnet18", "bce", pretrained=False)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    return {k: v.clone() for k, v in learn.model.state_dict().items()}
