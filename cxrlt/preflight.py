"""Everything ``cxrlt run`` can check before it reads an image: numbers, names, every part
built once on stand-in inputs, and the paths it will write to.

A typo found after an hour of decoding or training wastes that hour; found here it costs a
second. The stand-ins are the smallest inputs each hook takes (two classes, a few images):
a part's own value checks run in its constructor, so building it on them finds them. The
backbone is built on the meta device, which allocates no memory, after fetching its
pretrained weights, so an offline machine says so before the data is read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlt.errors import CxrltError

if TYPE_CHECKING:
    from cxrlt.pipeline import RunOptions
    from cxrlt.registry import Resolved

PRECISIONS = ("auto", "32", "bf16", "fp16")

# The smallest inputs each hook takes: two classes, one of them rare, among ten images.
_STAND_IN_COUNTS = [8, 2]
_STAND_IN_ITEMS = 10
_STAND_IN_FEATURES = 8


def check_numbers(options: RunOptions) -> None:
    """Every numeric and enumerated option in its range, named with the fix when not."""
    from cxrlt.data.cache import check_image_size
    from cxrlt.evaluation.selection import SELECTIONS

    for name in ("epochs", "bs"):
        if getattr(options, name) < 1:
            raise CxrltError(f"--{name} must be at least 1, got {getattr(options, name)}.")
    check_image_size(options.size)
    for name in ("lr", "backbone_lr"):
        value = getattr(options, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise CxrltError(
                f"--{name.replace('_', '-')} must be a positive number, got {value}: "
                "e.g. 2e-3 (find one with learn.lr_find())."
            )
    if not 0 < options.valid_frac < 1:
        raise CxrltError(
            f"--valid-frac is the share of patients held out, between 0 and 1 (e.g. 0.2); "
            f"got {options.valid_frac}."
        )
    if not 0 <= options.ema < 1:
        raise CxrltError(f"--ema is a decay between 0 (off) and 1, like 0.999; got {options.ema}.")
    if not (math.isfinite(options.grad_clip) and options.grad_clip >= 0):
        raise CxrltError(
            f"--grad-clip is the largest gradient norm, 0 (off) or positive; got "
            f"{options.grad_clip}."
        )
    for name, accepted in (("precision", PRECISIONS), ("select", tuple(SELECTIONS))):
        if getattr(options, name) not in accepted:
            raise CxrltError(
                f"--{name} {getattr(options, name)!r} is not one of {', '.join(accepted)}."
            )


def rehearse(specs: dict[str, Resolved], steps: Iterable[Resolved], epochs: int) -> None:
    """Build every part of the run once on stand-in inputs, so that a value its constructor
    refuses (``ldam:s=-1``, ``platt:C=0``) or a deferred re-weighting that would never
    start stops the run now."""
    import numpy as np

    loss = specs["loss"].build(class_counts=_STAND_IN_COUNTS, n_items=_STAND_IN_ITEMS)
    check_reweighting_start(loss.callbacks() if hasattr(loss, "callbacks") else [], epochs)
    labels = np.zeros((_STAND_IN_ITEMS, len(_STAND_IN_COUNTS)), np.uint8)
    labels[:, 0], labels[0, 1] = 1, 1
    specs["sampler"].build(labels=labels)
    specs["head"].build(in_features=_STAND_IN_FEATURES, n_classes=len(_STAND_IN_COUNTS))
    build_on_meta(specs["arch"])
    for part in (*steps, specs.get("calibrator"), specs.get("thresholds")):
        if part is not None:
            part.build()


def build_on_meta(arch: Resolved) -> Any:
    """The backbone built on the meta device: its name and parameters checked, its
    pretrained weights fetched (or their absence reported), no memory allocated."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*meta parameter.*")
        with torch.device("meta"):
            return arch.build(in_chans=1)


def check_reweighting_start(callbacks: Iterable[Any], epochs: int) -> None:
    """A deferred re-weighting that starts after the last epoch would silently never act."""
    from cxrlt.training.reweighting import DeferredReweighting

    for cb in callbacks:
        if isinstance(cb, DeferredReweighting) and cb.start is not None and cb.start >= epochs:
            raise CxrltError(
                f"The loss re-weights from epoch start={cb.start} on, but the run has {epochs} "
                "epochs, so it would never switch on: choose a start below --epochs."
            )


def check_paths(options: RunOptions, out: Path, *, resume: bool) -> None:
    """The data folder exists, the run folder and the image cache can be written."""
    from cxrlt.data.cache import check_cache_writable
    from cxrlt.io import cache_dir
    from cxrlt.outputs.run_dir import check_run_folder

    if options.data is not None and not Path(options.data).exists():
        raise CxrltError(
            f"--data {options.data} does not exist: give the folder that holds the data set's "
            "CSV files and images."
        )
    check_run_folder(out, overwrite=options.overwrite or resume)
    check_cache_writable(cache_dir())
