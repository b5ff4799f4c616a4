"""An exponential moving average of the weights (timm's ``ModelEmaV3``), validated and kept.

Averaged weights are usually better and steadier than the last step's; they are what each
epoch is validated with, what best-epoch selection keeps, and what the model holds after
``fit``. Training itself continues on the raw weights. The decay warms up (timm's
1 - (1 + step)^(-2/3), capped at ``decay``), so a short run is not averaged with its random
initialisation: a fixed 0.999 over 24 steps left validation mAP at 0.069 against 0.100
(H200, bench/training_speed.py).
"""

from __future__ import annotations

from typing import Any

import torch
from fastai.callback.core import Callback

from cxrlt.training.checkpoint import EpochCheckpoint, bare_model


class WeightAveraging(Callback):
    """Update the average after every optimiser step; validate on it."""

    order = EpochCheckpoint.order + 1  # raw weights come back after the checkpoint is taken
    during_post_training = False  # the post step ``ema`` averages its own retraining

    def __init__(self, decay: float = 0.999) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the weight-averaging decay must be between 0 and 1, got {decay}")
        self.decay, self.average, self._raw, self._trained = decay, None, None, False
        self.steps = 0

    def before_fit(self) -> None:
        from timm.utils.model_ema import ModelEmaV3

        if self.average is None:
            model = bare_model(self.learn.model)
            self.average = ModelEmaV3(model, decay=self.decay, use_warmup=True)

    def before_train(self) -> None:
        self._trained = True  # validate and get_preds fire the other events as well

    def after_step(self) -> None:
        self.steps += 1
        self.average.update(bare_model(self.learn.model), step=self.steps)

    def before_validate(self) -> None:
        if not self._trained:
            return
        model = bare_model(self.learn.model)
        self._raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.average.module.state_dict())

    def after_epoch(self) -> None:
        if self._raw is not None:
            bare_model(self.learn.model).load_state_dict(self._raw)
            self._raw = None

    def after_fit(self) -> None:
        if not self._trained:
            return
        self._trained = False
        bare_model(self.learn.model).load_state_dict(self.average.module.state_dict())

    def training_state(self) -> dict[str, torch.Tensor] | None:
        """The raw weights while the averaged ones are being validated (for checkpoints)."""
        return self._raw

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average.module.load_state_dict(state["average"])
        self.steps = state["steps"]
        self._trained = True  # restored training counts: after_fit hands over the average
