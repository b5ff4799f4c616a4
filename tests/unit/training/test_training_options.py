"""Training options: weight averaging, gradient clipping, precision, backbone learning rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.core import Callback
from fastai.callback.training import GradientClip
from fastai.learner import Learner

from cxrlt.errors import CxrltError
from cxrlt.options import RunOptions
from cxrlt.outputs.run_dir import CHECKPOINT
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.training.averaging import WeightAveraging
from cxrlt.training.checkpoint import EpochCheckpoint
from cxrlt.training.losses import BCELoss
from cxrlt.training.precision import mixed_precision_mode, precision_callbacks
from cxrlt.workflows import data
from cxrlt.workflows.run import run
from cxrlt.workflows.training import step_callbacks
from tests.unit.training.test_reweighting import tiny_learner


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


class Watch(Callback):
    """Raw weights after every step; whether validation saw the averaged weights."""

    order = WeightAveraging.order + 1

    def __init__(self) -> None:
        self.raw: list[torch.Tensor] = []
        self.validated_average: list[bool] = []

    def after_step(self) -> None:
        self.raw.append(weights(self.learn.model))

    def before_validate(self) -> None:
        averaged = weights(self.learn.weight_averaging.average.module)
        self.validated_average.append(torch.equal(weights(self.learn.model), averaged))


@pytest.mark.slow
def test_weight_average_follows_the_warmed_up_formula_and_is_validated_and_kept():
    learn, _ = tiny_learner(BCELoss())
    watch = Watch()
    learn.add_cbs([WeightAveraging(decay=0.9), watch])
    with learn.no_logging(), learn.no_bar():
        learn.fit(2, lr=0.1)
    expected = watch.raw[0]
    for step, raw in enumerate(watch.raw[1:], start=2):
        decay = min(0.9, 1 - step ** (-2 / 3))  # timm's warm-up, (1 + (step - 1))^(-2/3)
        expected = decay * expected + (1 - decay) * raw
    assert torch.allclose(weights(learn.model), expected, atol=1e-6)
    assert not torch.allclose(weights(learn.model), watch.raw[-1])
    assert watch.validated_average == [True, True]


def test_checkpoint_keeps_raw_weights_to_train_on_and_averaged_ones_as_best(tmp_path):
    learn, _ = tiny_learner(BCELoss())
    watch = Watch()
    checkpoint = EpochCheckpoint(tmp_path / CHECKPOINT, monitor="valid_loss", mode="min")
    learn.add_cbs([checkpoint, WeightAveraging(0.9), watch])
    with learn.no_logging(), learn.no_bar():
        learn.fit(1, lr=0.1)
    saved = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    raw = torch.cat([t.flatten() for t in saved["model"].values()])
    best = checkpoint.best_state()
    assert torch.equal(raw, watch.raw[-1])
    assert torch.allclose(torch.cat([t.flatten() for t in best.values()]), weights(learn.model))
    assert saved["callbacks"]["weight_averaging"]["steps"] == len(watch.raw)
    assert set(saved["callbacks"]) == {"weight_averaging"}  # no other callback keeps state


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_best_epoch_follows_the_monitor_direction(tmp_path, mode):
    learn, _ = tiny_learner(BCELoss())
    checkpoint = EpochCheckpoint(tmp_path / CHECKPOINT, monitor="valid_loss", mode=mode)
    learn.add_cbs([checkpoint])
    with learn.no_logging(), learn.no_bar():
        learn.fit(4, lr=0.3)
    losses = [values[1] for values in learn.recorder.values]
    pick = np.argmin if mode == "min" else np.argmax
    assert checkpoint.best_epoch == pick(losses) + 1
    assert [p.name for p in tmp_path.glob("best-*")] == [f"best-epoch{checkpoint.best_epoch}.pt"]


class GradientNorm(Callback):
    order = GradientClip.order + 1

    def __init__(self) -> None:
        self.norms: list[float] = []

    def before_step(self) -> None:
        grads = [p.grad.flatten() for p in self.learn.model.parameters()]
        self.norms.append(float(torch.cat(grads).norm()))


@pytest.mark.parametrize("clip", [0.0, 0.01])
def test_grad_clip_bounds_the_gradient_norm(clip):
    learn, _ = tiny_learner(BCELoss())
    norm = GradientNorm()
    options = RunOptions(grad_clip=clip, precision="32", channels_last=False)
    learn.add_cbs([norm, *step_callbacks(options, torch.device("cpu"))])
    with learn.no_logging(), learn.no_bar():
        learn.fit(1, lr=0.1)
    if clip:
        assert max(norm.norms) <= clip * (1 + 1e-4)
    else:
        assert max(norm.norms) > 0.01  # so the clipped case did clip


def test_mixed_precision_is_for_gpus_and_auto_means_32_bit_on_the_cpu():
    cpu = torch.device("cpu")
    assert mixed_precision_mode("auto", cpu) is None
    assert precision_callbacks("auto", None, cpu) == []
    assert [type(cb) for cb in precision_callbacks("32", True, cpu)] == [ChannelsLast]
    with pytest.raises(CxrltError, match="--precision bf16 needs a GPU"):
        mixed_precision_mode("bf16", cpu)


class Stop(Exception):
    pass


def test_backbone_learning_rate_gives_the_backbone_its_own_rate(monkeypatch, tmp_path):
    seen = {}

    def spy(learn: Learner, n_epoch: int, lr_max: object = None, **kwargs: object) -> None:
        learn.create_opt()
        learn.opt.set_hypers(lr=lr_max)  # what fit does with it
        seen["rates"] = [hypers["lr"] for hypers in learn.opt.hypers]
        raise Stop

    monkeypatch.setattr(Learner, "fit_one_cycle", spy)
    options = RunOptions(dataset=TINY_DATA, size=32, lr=1e-2, backbone_lr=1e-4, out=tmp_path)
    with pytest.raises(Stop):
        run(options)
    assert np.allclose(seen["rates"], [1e-4, 1e-2])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ema": 1.5}, "--ema is a decay"),
        ({"grad_clip": -1.0}, "--grad-clip is the largest gradient norm"),
        ({"precision": "16"}, "--precision '16' is not one of"),
        ({"select": "first"}, "--select 'first' is not one of"),
        ({"backbone_lr": 0.0}, "--backbone-lr must be a positive number"),
        ({"lr": float("nan")}, "--lr must be a positive number, got nan"),
        ({"grad_clip": float("nan")}, "--grad-clip is the largest gradient norm.*got nan"),
        ({"post": "platt:C=0"}, "The calibrator 'platt:C=0' cannot be built: C must be > 0"),
        ({"post": "tau-norm:taus=()"}, "cannot be built: taus must list at least one value"),
    ],
)
def test_bad_training_options_are_named(change, message, tmp_path, monkeypatch):
    """Before any data is read, let alone a model trained."""

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the options were checked")

    monkeypatch.setattr(data, "run_dataloaders", no_data)
    with pytest.raises(CxrltError, match=message):
        run(RunOptions(dataset=TINY_DATA, out=tmp_path, **change))
