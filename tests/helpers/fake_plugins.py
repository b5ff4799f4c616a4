"""Sources of fake plugins, for ``cxrlt_fake_plugin`` (cxrlt.pytest_plugin) to install."""

from __future__ import annotations


def exploding_loss_plugin(name: str, when: str) -> str:
    """Source of a plugin whose loss ``name`` turns NaN while ``when`` holds (a Python
    expression over ``self.epoch`` and ``os``, evaluated at each epoch's start)."""
    return f"""
    import os
    from fastai.callback.core import Callback
    from cxrlt.hookspecs import hookimpl
    from cxrlt.training.losses import BCELoss

    class Poison(Callback):
        def __init__(self, loss):
            self.loss_module = loss

        def before_epoch(self):
            self.loss_module.poisoned = {when}

    class ExplodingLoss(BCELoss):
        poisoned = False

        def elementwise(self, logits, targets):
            loss = super().elementwise(logits, targets)
            return loss * float("nan") if self.poisoned else loss

        def callbacks(self):
            return [Poison(self)]

    @hookimpl
    def register_losses(register):
        register("{name}", f"{{__name__}}:ExplodingLoss")
    """
