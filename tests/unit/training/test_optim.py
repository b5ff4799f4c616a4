"""The fused optimiser is fastai's Adam: the same update and state, per group and per
parameter (no weight decay on normalisation), and a checkpoint written with either resumes
with the other."""

from __future__ import annotations

import pytest
import torch
from fastai.optimizer import Adam
from torch import nn

from cxrlt.training.checkpoint import load_optimizer_state, safe_form
from cxrlt.training.optim import FusedAdam

BATCHES = [torch.randn(8, 6, generator=torch.Generator().manual_seed(i)) for i in range(6)]
MOMENTUMS = [0.95, 0.93, 0.9, 0.88, 0.9, 0.94]  # one-cycle moves the momentum every batch
CLOSE = {"rtol": 1e-5, "atol": 1e-6}  # float32, kernels that order their operations apart


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))


def optimiser(kind, model: nn.Sequential):
    """Two groups with their own learning rate (body and head), weight decay, and none on the
    normalisation layer, as fastai's learner sets it."""
    groups = [[*model[0].parameters(), *model[1].parameters()], list(model[3].parameters())]
    opt = kind(groups, lr=1e-3, wd=0.1)
    opt.set_hyper("lr", [1e-2, 3e-2])
    for param in model[0].parameters():
        opt.state[param]["do_wd"] = False
    return opt


def train(opt, model: nn.Module, steps: range) -> None:
    for step in steps:
        opt.set_hyper("mom", MOMENTUMS[step])
        model(BATCHES[step]).square().mean().backward()
        opt.step()
        opt.zero_grad()


def assert_same(model_a: nn.Module, model_b: nn.Module) -> None:
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(a, b, **CLOSE, msg=name)


@pytest.mark.parametrize("steps", [1, 6])
def test_the_fused_step_is_fastai_adams_update_and_state(steps):
    models = {kind: small_model() for kind in (Adam, FusedAdam)}
    opts = {kind: optimiser(kind, model) for kind, model in models.items()}
    for kind in opts:
        train(opts[kind], models[kind], range(steps))

    assert_same(models[Adam], models[FusedAdam])
    untrained = small_model()
    pairs = zip(models[Adam].parameters(), untrained.parameters(), strict=True)
    # every parameter stepped (the normalisation layer's too) far beyond the tolerance
    assert min((p - q).abs().max() for p, q in pairs) > 1e-4
    for (param, *_), (fused_param, *_) in zip(
        opts[Adam].all_params(), opts[FusedAdam].all_params(), strict=True
    ):
        state, fused = opts[Adam].state[param], opts[FusedAdam].state[fused_param]
        torch.testing.assert_close(fused["grad_avg"], state["grad_avg"], **CLOSE)
        torch.testing.assert_close(fused["sqr_avg"], state["sqr_avg"], **CLOSE)
        assert int(fused["step"]) == state["step"] == steps
        assert fused.get("do_wd", True) == state.get("do_wd", True)


def test_weight_decay_spares_the_parameters_marked_without_it():
    model = small_model()
    opt = optimiser(FusedAdam, model)
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    before = [param.detach().clone() for param in model.parameters()]
    opt.step()
    for (name, param), old in zip(model.named_parameters(), before, strict=True):
        if name.startswith("0."):  # the normalisation layer: no decay, no gradient
            torch.testing.assert_close(param, old, rtol=0, atol=0)
        else:
            assert not torch.equal(param, old), name


@pytest.mark.parametrize(
    ("writer", "reader"),
    [(FusedAdam, Adam), (Adam, FusedAdam)],
    ids=["fused-to-fastai", "fastai-to-fused"],
)
def test_a_checkpoint_of_either_optimiser_resumes_with_the_other(tmp_path, writer, reader):
    """Through the checkpoint's own path: its safe form, torch's safe loader, and back."""
    whole = small_model()
    train(optimiser(writer, whole), whole, range(6))

    first = small_model()
    opt = optimiser(writer, first)
    train(opt, first, range(3))
    torch.save(safe_form(opt.state_dict()), tmp_path / "opt.pt")
    saved = torch.load(tmp_path / "opt.pt", weights_only=True)

    resumed, fresh = small_model(), small_model()
    for model in (resumed, fresh):
        model.load_state_dict(first.state_dict())
    resumed_opt = optimiser(reader, resumed)
    load_optimizer_state(resumed_opt, saved)
    train(resumed_opt, resumed, range(3, 6))
    train(optimiser(reader, fresh), fresh, range(3, 6))

    assert_same(resumed, whole)
    assert int(resumed_opt.state[next(resumed.parameters())]["step"]) == 6
    with pytest.raises(AssertionError):  # the state matters: without it the run goes elsewhere
        assert_same(fresh, whole)
