"""Retrain a few parameters of a trained model on class-balanced batches, as in the decoupling
of Kang et al., ICLR 2020, "Decoupling Representation and Classifier for Long-Tailed
Recognition": the representation stays as it was, BatchNorm statistics included.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastai.callback.core import Callback, TrainEvalCallback
from fastai.learner import Learner
from torch import nn

from cxrlt.errors import CxrltError
from cxrlt.registry import Resolved


class EvalExcept(Callback):
    """Every module in eval mode while training, except ``train_modules``: frozen BatchNorm
    layers keep their running statistics and dropout outside them stays off."""

    order = TrainEvalCallback.order + 1  # after it has put the whole model in train mode

    def __init__(self, train_modules: Sequence[nn.Module]) -> None:
        self.train_modules = list(train_modules)

    def before_train(self) -> None:
        self.learn.model.eval()
        for module in self.train_modules:
            module.train()


def main_training_callbacks(learn: Learner) -> list[Callback]:
    """The learner's callbacks that sit out post-training steps: those whose class declares
    ``during_post_training = False`` because they act on the main training's epochs (deferred
    re-weighting, checkpoints, weight averaging, the run log). Every other callback runs, so a
    plugin's callback that shapes batches shapes the retraining's batches too."""
    return [cb for cb in learn.cbs if not getattr(type(cb), "during_post_training", True)]


def require_sampled_loader(learn: Learner) -> None:
    """Refuse, changing nothing, a train loader that retraining cannot draw balanced batches
    from: one without a ``sampler`` to swap, or whose data set has no ``targets`` to build
    the sampler on. Steps that retrain call it from :meth:`PostStep.check`."""
    loader = learn.dls.train
    if not hasattr(loader, "sampler") or not hasattr(loader.dataset, "targets"):
        raise CxrltError(
            f"Retraining draws class-balanced batches through the train loader's sampler, and "
            f"the train loader {type(loader).__name__} has no sampler (or its data set no "
            "'targets'): build the loaders with cxr_dataloaders, or leave out crt, lws and ema."
        )


def retrain(
    learn: Learner,
    params: Sequence[nn.Parameter],
    train_modules: Sequence[nn.Module],
    *,
    sampler: Resolved,
    epochs: int,
    lr: float,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Train ``params`` alone for ``epochs`` (one cycle up to ``lr``), with the train loader
    drawing by ``sampler`` and a fresh optimiser; afterwards the loader's sampler and epoch
    count, every ``requires_grad`` flag and the learner's optimiser are put back. Refuses
    a loader without a sampler before changing anything (:func:`require_sampled_loader`)."""
    require_sampled_loader(learn)
    loader = learn.dls.train
    trainable = {id(p) for p in params}
    flags = [(p, p.requires_grad) for p in learn.model.parameters()]
    saved = loader.sampler, loader.epoch, learn.opt
    try:
        for p, _ in flags:
            p.requires_grad_(id(p) in trainable)
        loader.sampler = sampler.build(labels=loader.dataset.targets.numpy())
        learn.opt = learn.opt_func(list(params), lr=lr)
        learn.fit_one_cycle(epochs, lr, cbs=[EvalExcept(train_modules), *callbacks])
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        loader.sampler, loader.epoch, learn.opt = saved
