"""Weight averaging after training, for runs that did not average while training (``--ema``).

A few more epochs at a low learning rate while an exponential moving average of the weights
is kept (timm's ModelEmaV3, through cxrlt's training callback); the model ends with the
average, which usually generalises a little better than the last step's weights.
"""

from __future__ import annotations

from fastai.learner import Learner

from cxrlt.post import PostStep
from cxrlt.post.retrain import require_sampled_loader, retrain
from cxrlt.registry import resolve
from cxrlt.training.averaging import WeightAveraging


class WeightAveragingStep(PostStep):
    """Fine-tune the whole model for ``epochs`` (one cycle up to ``lr``, uniform batches) and
    keep the moving average of its weights with ``decay``."""

    def __init__(self, *, epochs: int = 2, lr: float = 1e-4, decay: float = 0.99) -> None:
        if epochs < 1 or lr <= 0:
            raise ValueError(f"epochs must be at least 1 and lr positive, got {epochs}, {lr}")
        if not 0 < decay < 1:
            raise ValueError(f"decay must be between 0 and 1, got {decay}")
        self.epochs, self.lr, self.decay = epochs, lr, decay

    def check(self, learn: Learner) -> None:
        require_sampled_loader(learn)

    def fit(self, learn: Learner) -> None:
        retrain(
            learn,
            list(learn.model.parameters()),
            [learn.model],
            sampler=resolve("samplers", "uniform"),
            epochs=self.epochs,
            lr=self.lr,
            callbacks=[WeightAveraging(self.decay)],
        )
