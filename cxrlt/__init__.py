"""cxrlt: long-tailed, multi-label chest X-ray classification.

``__all__`` is the public API: what scripts and plugins import, pinned by
tests/plugins/test_public_api.py. The registry and the plugin contract's markers load with the
package (they import no torch); the rest loads on first use, so ``import cxrlt`` and the CLI's
listing commands stay fast.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from cxrlt.errors import CxrltError
from cxrlt.hookspecs import hookimpl
from cxrlt.registry import Resolved, SubmissionFormat, registry, resolve
from cxrlt.spec import Spec

__version__ = "0.1.0"

__all__ = [
    "BCELoss",
    "Backbone",
    "Calibrator",
    "CellOutcome",
    "CxrltError",
    "Executor",
    "Head",
    "ID_COLUMN",
    "LINE_COLUMN",
    "LabelledImages",
    "PATH_COLUMN",
    "PATIENT_COLUMN",
    "PostStep",
    "Preprocessing",
    "Resolved",
    "Sampler",
    "Spec",
    "SubmissionFormat",
    "ThresholdPolicy",
    "TrackedRun",
    "Tracker",
    "__version__",
    "cxr_dataloaders",
    "cxr_learner",
    "hookimpl",
    "load_learner",
    "load_run",
    "locate_images",
    "read_csv",
    "registry",
    "resolve",
    "run_cell",
    "run_pipeline",
    "training_label_counts",
]

# fastai scripts a few layers with torch.jit at import; newer torch warns about it on every run.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
)

if TYPE_CHECKING:
    from cxrlt.calibration.calibrators import Calibrator
    from cxrlt.calibration.thresholds import ThresholdPolicy
    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.data.samplers import Sampler
    from cxrlt.data.table import (
        ID_COLUMN,
        LINE_COLUMN,
        PATH_COLUMN,
        PATIENT_COLUMN,
        LabelledImages,
        locate_images,
        read_csv,
    )
    from cxrlt.executors import CellOutcome, Executor, run_cell, run_pipeline
    from cxrlt.model.contracts import Backbone, Head
    from cxrlt.model.preprocessing import Preprocessing
    from cxrlt.post import PostStep
    from cxrlt.prediction import load_run
    from cxrlt.training.learner import cxr_learner, load_learner, training_label_counts
    from cxrlt.training.losses import BCELoss
    from cxrlt.training.tracking import TrackedRun, Tracker

# The module each heavy name comes from. By hook contract: losses subclass BCELoss, post steps
# PostStep, calibrators Calibrator, threshold policies ThresholdPolicy, loggers Tracker;
# samplers, backbones, heads and executors follow the protocols Sampler, Backbone, Head and
# Executor (an executor runs each cell with run_cell, run_pipeline its default run, and reports
# CellOutcomes); data sets return LabelledImages (a table with the columns named here, built with
# read_csv and locate_images).
_LAZY = {
    "cxr_dataloaders": "cxrlt.data.loaders",
    "cxr_learner": "cxrlt.training.learner",
    "load_learner": "cxrlt.training.learner",
    "training_label_counts": "cxrlt.training.learner",
    "load_run": "cxrlt.prediction",
    "BCELoss": "cxrlt.training.losses",
    "PostStep": "cxrlt.post",
    "Sampler": "cxrlt.data.samplers",
    "Backbone": "cxrlt.model.contracts",
    "Head": "cxrlt.model.contracts",
    "Preprocessing": "cxrlt.model.preprocessing",
    "Calibrator": "cxrlt.calibration.calibrators",
    "ThresholdPolicy": "cxrlt.calibration.thresholds",
    "Tracker": "cxrlt.training.tracking",
    "TrackedRun": "cxrlt.training.tracking",
    **dict.fromkeys(("CellOutcome", "Executor", "run_cell", "run_pipeline"), "cxrlt.executors"),
    **dict.fromkeys(
        (
            "LabelledImages",
            "read_csv",
            "locate_images",
            "ID_COLUMN",
            "PATIENT_COLUMN",
            "PATH_COLUMN",
            "LINE_COLUMN",
        ),
        "cxrlt.data.table",
    ),
}
# Learners from these carry cxrlt.post's methods (learn.post, .calibrate, .thresholds): the
# post-training layer sits above training, so it is loaded here, as fastai's ``all`` modules do.
_WITH_POST_METHODS = ("cxr_learner", "load_learner")


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cxrlt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    if name in _WITH_POST_METHODS:
        importlib.import_module("cxrlt.post")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
