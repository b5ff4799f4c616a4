"""Stop at the first non-finite training loss, saying where, instead of training on NaNs."""

from __future__ import annotations

import math

from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision

from cxrlt.errors import CxrltError
from cxrlt.training.checkpoint import wait_for_checkpoints
from cxrlt.training.distributed import any_rank


class NonFiniteLoss(CxrltError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Raise :class:`NonFiniteLoss` naming the epoch and batch (both counted from 1).

    Raised before the optimiser step, so the weights never take a NaN gradient, and before
    the epoch ends, so the last checkpoint written stays the last good one. In distributed
    training every rank stops together (one rank stopping alone would leave the others
    waiting for its gradients).
    """

    order = MixedPrecision.order + 1  # after autocast is left, so raising leaves it off

    def after_loss(self) -> None:
        if not self.training:
            return
        value = float(self.loss.detach())
        bad = not math.isfinite(value)
        if any_rank(bad):
            wait_for_checkpoints(self.learn)  # the last good epoch's, written in the background
            raise NonFiniteLoss(
                f"The training loss became {value if bad else 'non-finite on another process'}"
                f" at epoch {self.epoch + 1}, batch "
                f"{self.iter + 1} of {self.n_iter}: training stopped. Lower --lr, set "
                "--grad-clip, or check the data and loss parameters."
            )
