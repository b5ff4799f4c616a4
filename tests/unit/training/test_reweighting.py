"""Deferred re-weighting: positive terms only, switched at an epoch counted across fits."""

from __future__ import annotations

import pytest
import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from torch import nn
from torch.utils.data import TensorDataset

from cxrlt.errors import CxrltError
from cxrlt.registry import resolve
from cxrlt.training.learner import loss_callbacks
from cxrlt.training.losses import BCELoss, LDAMLoss, class_balanced_weights
from cxrlt.training.reweighting import DeferredReweighting
from tests.unit.training.test_losses import COUNTS, bce, mean_over, value


def test_positive_weights_scale_positive_terms_only():
    weights = [3.0, 0.5, 2.0]
    loss = BCELoss()
    loss.positive_weights = torch.tensor(weights)
    expected = mean_over(lambda z, y, c: (weights[c] if y else 1.0) * bce(z, y))
    assert value(loss) == pytest.approx(expected)


class RecordSwitch(Callback):
    """Per training epoch: were the positive weights on?"""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def before_batch(self) -> None:
        if self.training and self.iter == 0:
            self.seen.append(self.learn.loss_func.positive_weights is not None)

    def before_validate(self) -> None:
        assert self.learn.loss_func.positive_weights is None  # validation stays unweighted


def tiny_learner(loss: nn.Module) -> tuple[Learner, RecordSwitch]:
    x = torch.randn(32, 4)
    y = (torch.rand(32, 3) < 0.3).float()
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x, y), bs=8, device="cpu")
    record = RecordSwitch()
    learn = Learner(dls, nn.Linear(4, 3), loss_func=loss, cbs=[*loss_callbacks(loss), record])
    return learn, record


@pytest.mark.slow
@pytest.mark.parametrize("name", ["drw:start=3", "ldam-drw:start=3"])
def test_switch_epoch_counts_across_fit_calls(name):
    one_fit, record_one = tiny_learner(resolve("losses", name).build(class_counts=COUNTS))
    with one_fit.no_logging(), one_fit.no_bar():
        one_fit.fit(5)
    two_fits, record_two = tiny_learner(resolve("losses", name).build(class_counts=COUNTS))
    with two_fits.no_logging(), two_fits.no_bar():
        two_fits.fit(2)
        two_fits.fit(3)
    assert record_one.seen == [False, False, False, True, True]
    assert record_two.seen == record_one.seen


@pytest.mark.slow
def test_default_switch_is_at_eighty_percent_of_the_first_fit():
    learn, record = tiny_learner(resolve("losses", "drw").build(class_counts=COUNTS))
    with learn.no_logging(), learn.no_bar():
        learn.fit(5)
    assert record.seen == [False, False, False, False, True]


def test_switched_weights_are_class_balanced_and_the_loss_changes():
    loss = resolve("losses", "ldam-drw:beta=0.999").build(class_counts=COUNTS)
    before = value(loss)
    (drw,) = loss.callbacks()
    assert torch.allclose(drw.weights, class_balanced_weights(COUNTS, 0.999))
    loss.positive_weights = drw.weights
    plain = LDAMLoss(class_counts=COUNTS)
    assert before == pytest.approx(value(plain))
    assert value(loss) != pytest.approx(before)


def test_state_survives_a_checkpoint():
    drw = DeferredReweighting(torch.ones(3), start=None)
    drw.load_state_dict({"epochs_done": 4, "start": 2})
    assert drw.active
    fresh = DeferredReweighting(torch.ones(3), start=7)
    fresh.load_state_dict(drw.state_dict())
    assert fresh.active and fresh.start == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("drw:start=-1", "start must be at least 0"),
        ("ldam-drw:beta=1", r"beta must be in \[0, 1\)"),
    ],
)
def test_bad_reweighting_parameters_are_named(spec, message):
    name = spec.split(":")[0]
    with pytest.raises(CxrltError, match=f"The loss '{name}:[^']*' cannot be built: {message}"):
        resolve("losses", spec).build(class_counts=COUNTS)
