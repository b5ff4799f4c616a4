"""cxrlt: long-tailed, multi-label chest X-ray classification.

The heavy parts (torch, fastai, timm) load on first use, so ``import cxrlt`` and the CLI's
listing commands stay fast.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "cxr_dataloaders",
    "cxr_learner",
    "load_learner",
    "load_run",
    "CxrltError",
    "__version__",
]

from cxrlt.errors import CxrltError

# fastai scripts a few layers with torch.jit at import; newer torch warns about it on every run.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
)

if TYPE_CHECKING:
    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.prediction import load_run
    from cxrlt.training.learner import cxr_learner, load_learner

_LAZY = {
    "cxr_dataloaders": "cxrlt.data.loaders",
    "cxr_learner": "cxrlt.training.learner",
    "load_learner": "cxrlt.training.learner",
    "load_run": "cxrlt.prediction",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cxrlt' has no attribute {name!r}")
