"""The validation scores an epoch is chosen by: the whole split's mAP and each half's."""

from __future__ import annotations

import numpy as np
import torch
from fastai.callback.core import Callback

from cxrlt.evaluation.selection import half_scores


class HalfScores(Callback):
    """After every validation, the mAP of the whole split and of each of its ``halves``
    (one entry per validation image, in loader order): :class:`EpochCheckpoint` keeps the best
    weights by each.

    The predictions are gathered across processes in data-set order (fastai's ``to_detach``
    on the distributed loader), so every rank computes the same scores and chooses alike.
    """

    during_post_training = False  # it scores the main training's epochs

    def __init__(self, halves: np.ndarray) -> None:
        self.halves = np.asarray(halves)
        self.scores: dict[str, float] = {}

    def before_validate(self) -> None:
        self._logits: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def after_batch(self) -> None:
        if not self.training:
            self._logits.append(self.learn.to_detach(self.pred).float())
            self._targets.append(self.learn.to_detach(self.yb[0]))

    def after_validate(self) -> None:
        logits = torch.cat(self._logits).numpy()
        if len(logits) != len(self.halves):  # a partial pass (get_preds of a subset)
            return
        self.scores = half_scores(logits, torch.cat(self._targets).numpy(), self.halves)

    def latest(self) -> dict[str, float]:
        """The scores of the last full validation."""
        return self.scores
