"""Deferred re-weighting (Cao et al., NeurIPS 2019): learn features unweighted, then re-weight.

Class-balanced weights from the start distort representation learning; switched on late
they correct the classifier's bias towards head classes. The switch epoch counts every
training epoch the callback has seen, across ``fit`` calls and through a resumed checkpoint,
so with ``start=5``, ``fit(3); fit(3)`` re-weights exactly where ``fit(6)`` would (the
default start, 80% of the first ``fit``, depends on how training is split).
"""

from __future__ import annotations

from typing import Any

import torch
from fastai.callback.core import Callback

DEFAULT_FRACTION = 0.8  # of the first fit's epochs, as in the original schedule


class DeferredReweighting(Callback):
    """Unweighted until ``start`` epochs are done, then ``weights`` on the positive terms.

    ``start`` None means 80% of the epochs of the first ``fit`` call. The loss must expose a
    ``positive_weights`` attribute, as every :class:`~cxrlt.training.losses.BCELoss` does.
    It sits out post-training: its epochs are the main training's, and retraining on
    class-balanced batches already corrects the head-class bias it corrects.
    """

    during_post_training = False

    def __init__(self, weights: torch.Tensor, start: int | None = None) -> None:
        if start is not None and start < 0:
            raise ValueError(f"start must be at least 0, got {start}")
        self.weights, self.start, self.epochs_done = weights, start, 0

    @property
    def active(self) -> bool:
        return self.start is not None and self.epochs_done >= self.start

    def before_train(self) -> None:
        if self.start is None:  # here, not in before_fit, which get_preds fires too
            self.start = self.epochs_done + max(1, round(DEFAULT_FRACTION * self.n_epoch))
        self.learn.loss_func.positive_weights = self.weights if self.active else None

    def after_train(self) -> None:
        self.epochs_done += 1
        self.learn.loss_func.positive_weights = None  # validation losses stay comparable

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for a resumed run to switch at the same epoch."""
        return {"epochs_done": self.epochs_done, "start": self.start}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_done, self.start = state["epochs_done"], state["start"]
