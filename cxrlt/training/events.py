"""Telling training events from the ones fastai fires while predicting."""

from __future__ import annotations

from typing import Any


def predicting(learn: Any) -> bool:
    """True inside ``Learner.get_preds``, which fires ``before_fit``, ``after_epoch`` and
    ``after_fit`` too: callbacks that act on training must then stay still."""
    return hasattr(learn, "gather_preds")
