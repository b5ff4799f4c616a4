"""Guards of a sane training run: stop at a non-finite loss, bound the gradient norm."""

from __future__ import annotations

import math

import torch
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision

from cxrlt.errors import CxrltError
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

    def after_loss(self) -> None:
        if not self.training:
            return
        value = float(self.loss.detach())
        bad = not math.isfinite(value)
        if any_rank(bad):
            raise NonFiniteLoss(
                f"The training loss became {value if bad else 'non-finite on another process'}"
                f" at epoch {self.epoch + 1}, batch "
                f"{self.iter + 1} of {self.n_iter}: training stopped. Lower --lr, set "
                "--grad-clip, or check the data and loss parameters."
            )


class ClipGradients(Callback):
    """Clip the gradient norm before each step; unscales fp16 gradients first, which fastai's
    own ``GradientClip`` does not, so the bound applies to the true gradients."""

    order = MixedPrecision.order - 1  # before the scaler steps

    def __init__(self, max_norm: float) -> None:
        if max_norm <= 0:
            raise ValueError(f"the largest gradient norm must be positive, got {max_norm}")
        self.max_norm = max_norm

    def before_step(self) -> None:
        scaler = getattr(self.learn, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            scaler.unscale_(self.learn.mixed_precision)  # the optimiser fastai's scaler steps
        torch.nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.max_norm)
