"""Callbacks declare whether they run during post-training steps: those of the main training
(deferred re-weighting, checkpoints, weight averaging, the run log, epoch scores) say no; any
other, a plugin's batch-shaping callback among them, runs while a step retrains."""

from __future__ import annotations

import numpy as np
from fastai.callback.core import Callback

import cxrlt.post  # noqa: F401 - adds Learner.post
from cxrlt.post.retrain import main_training_callbacks
from cxrlt.training.averaging import WeightAveraging
from cxrlt.training.checkpoint import EpochCheckpoint
from cxrlt.training.learner import cxr_learner
from cxrlt.training.reweighting import DeferredReweighting
from cxrlt.training.run_log import RunLog
from cxrlt.training.selection import HalfScores


class HalveInputs(Callback):
    """A plugin's batch-shaping callback, declaring nothing: it shapes every training batch."""

    def __init__(self) -> None:
        self.training_batches = 0

    def before_batch(self) -> None:
        if self.training:
            self.training_batches += 1
            self.learn.xb = (self.xb[0] / 2,)


class EpochCounter(Callback):
    """A plugin's callback of the main training's epochs."""

    during_post_training = False

    def __init__(self) -> None:
        self.epochs = 0

    def after_epoch(self) -> None:
        self.epochs += 1


def test_the_callbacks_set_aside_are_those_that_declare_it(dls, tmp_path):
    main_training = [
        EpochCounter(),
        RunLog("log.csv"),
        HalfScores(np.zeros(3)),
        WeightAveraging(0.9),
        EpochCheckpoint(tmp_path / "checkpoint.pth"),
    ]
    learn = cxr_learner(
        dls, "resnet18", "drw", pretrained=False, cbs=[HalveInputs(), *main_training]
    )
    set_aside = main_training_callbacks(learn)
    assert {type(cb) for cb in set_aside} == {
        *(type(cb) for cb in main_training),
        DeferredReweighting,  # the drw loss's own
    }
    assert not any(isinstance(cb, HalveInputs) for cb in set_aside)


def test_a_plugins_batch_shaping_callback_runs_while_crt_retrains(dls):
    shaping, counter = HalveInputs(), EpochCounter()
    learn = cxr_learner(dls, "resnet18", "bce", pretrained=False, cbs=[shaping, counter])
    with learn.no_bar(), learn.no_logging():
        learn.post("crt:epochs=1")
    assert shaping.training_batches > 0
    assert counter.epochs == 0 and counter in learn.cbs  # set aside, then put back
