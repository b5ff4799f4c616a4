"""The head a loss declares is the default head of `cxrlt run`, `cxrlt sweep` and
`cxr_learner`; an explicit head wins with a note; LDAM on the cosine head is s(cos - y Delta)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from cxrlt.model.head_choice import choose_head
from cxrlt.model.heads import CosineHead, LinearHead
from cxrlt.options import RunOptions
from cxrlt.registry import resolve
from cxrlt.sweep import Sweep
from cxrlt.workflows import data
from cxrlt.workflows.run import run
from cxrlt.workflows.specs import check_specs

LOSS_WITH_HEAD = """
from cxrlt.hookspecs import hookimpl
from cxrlt.training.losses import BCELoss

@hookimpl
def register_losses(register):
    register("wants-csra", BCELoss, head="csra:lam=0.3")
"""


def _head(options: RunOptions) -> str:
    return str(check_specs(options).head.spec)


@pytest.mark.parametrize(
    ("loss", "head"),
    [("bce", "linear"), ("asl", "linear"), ("ldam", "cosine"), ("ldam-drw:start=2", "cosine")],
)
def test_the_run_takes_the_head_the_loss_declares(loss: str, head: str) -> None:
    assert RunOptions().head is None
    assert resolve("heads", _head(RunOptions(loss=loss))).entry.name == head


def test_a_plugin_loss_declares_its_head_too(cxrlt_fake_plugin) -> None:
    cxrlt_fake_plugin("wants", LOSS_WITH_HEAD)
    assert _head(RunOptions(loss="wants-csra")) == str(resolve("heads", "csra:lam=0.3").spec)


@pytest.mark.parametrize("head", ["linear", "cosine:scale=30.0"])
def test_an_explicit_head_wins_with_a_note(head: str) -> None:
    assert _head(RunOptions(loss="ldam", head=head)) == str(resolve("heads", head).spec)
    chosen, note = choose_head(resolve("losses", "ldam"), head)
    assert note is not None and "'cosine:scale=1.0'" in note and f"'{chosen.spec}'" in note
    assert choose_head(resolve("losses", "ldam"), "cosine")[1] is None  # the declared one
    assert choose_head(resolve("losses", "bce"), "csra")[1] is None  # bce declares none


def test_the_run_prints_the_note(tmp_path, monkeypatch) -> None:
    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(data, "run_dataloaders", stop)  # stop before any data or training
    printed = {}
    for head in (None, "linear"):
        console = Console(record=True, width=300)
        options = RunOptions(loss="ldam", head=head, device="cpu", out=tmp_path / str(head))
        with pytest.raises(Stop):
            run(options, console)
        printed[head] = console.export_text()
    assert "designed for the head 'cosine:scale=1.0'" in printed["linear"]
    assert "designed for" not in printed[None]


def test_the_sweep_gets_the_same_default_head(tmp_path) -> None:
    sweep = Sweep.from_text(tmp_path, "bce,ldam", "resnet18", "none", 1, RunOptions())
    heads = {cell.loss: _head(sweep.cell_options(cell)) for cell in sweep.cells}
    assert heads == {"bce": "linear:dropout=0.0", "ldam": "cosine:scale=1.0"}
    assert all("--head" not in sweep.command(cell) for cell in sweep.cells)


@pytest.mark.slow
def test_cxr_learner_gets_the_same_default_head() -> None:
    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.pytest_plugin import TINY_DATA
    from cxrlt.training.learner import cxr_learner

    dls = cxr_dataloaders(TINY_DATA, size=32, bs=32, device="cpu")
    assert isinstance(cxr_learner(dls, "resnet18", "ldam").model.head, CosineHead)
    assert isinstance(cxr_learner(dls, "resnet18", "bce").model.head, LinearHead)
    learn = cxr_learner(dls, "resnet18", "ldam", head="linear")
    assert isinstance(learn.model.head, LinearHead)


def test_ldam_on_its_default_head_is_s_times_cos_minus_margin_not_s_squared() -> None:
    """Cao et al.: logits s * (cos - y * Delta) with |cos| <= 1; the cosine head must not
    scale the cosines a second time."""
    specs = check_specs(RunOptions(loss="ldam"))
    counts = [100, 10, 1]
    loss = specs.loss.build(class_counts=counts, n_items=120)
    torch.manual_seed(0)
    head = specs.head.build(in_features=8, n_classes=3)
    features = torch.randn(4, 8)
    targets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    cos = F.normalize(features, dim=1) @ F.normalize(head.weight.detach(), dim=1).T
    logits = head(features)
    torch.testing.assert_close(logits, cos)
    s, max_m = specs.loss.params["s"], specs.loss.params["max_m"]
    raw = torch.tensor(counts, dtype=torch.float32) ** -0.25
    margins = raw * max_m / raw.max()
    expected = F.binary_cross_entropy_with_logits(s * (cos - targets * margins), targets)
    torch.testing.assert_close(loss(logits, targets), expected)
    torch.testing.assert_close(loss.activation(logits), torch.sigmoid(s * cos))
    assert (s * logits).abs().max() <= s  # within [-s, s]: the scale is applied once
