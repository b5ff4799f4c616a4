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
    from cxrlt.options import RunOptions
    from cxrlt.registry import Resolved
    from cxrlt.workflows.specs import RunSpecs

PRECISIONS = ("auto", "32", "bf16", "fp16")

# Inputs as small as each hook takes, with more classes than any data set has, so that a
# parameter bounded by the class count (ml-decoder's n_groups) is not refused here: a long
# tail of 1000 classes among 2000 images, every class present.
_STAND_IN_CLASSES = 1000
_STAND_IN_ITEMS = 2000
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


def rehearse(specs: RunSpecs, epochs: int) -> None:
    """Build every part of the run once on stand-in inputs, so that a value its constructor
    refuses (``ldam:s=-1``, ``platt:C=0``) or a deferred re-weighting that would never
    start stops the run now.

    Only the user's mistakes stop here (:class:`CxrltError`, and the ``ValueError`` a
    constructor raises, which the registry turns into one); any other exception of a
    part on stand-ins (a plugin that needs real data) is left for the real build to raise.
    """
    import numpy as np

    labels = np.zeros((_STAND_IN_ITEMS, _STAND_IN_CLASSES), np.uint8)
    labels[np.arange(_STAND_IN_ITEMS), np.arange(_STAND_IN_ITEMS) % _STAND_IN_CLASSES] = 1
    labels[: _STAND_IN_ITEMS // 2, 0] = 1  # one frequent class, the rest rare
    counts = labels.sum(axis=0).tolist()
    loss = _tried(specs.loss.build, class_counts=counts, n_items=_STAND_IN_ITEMS)
    if loss is not None:
        check_reweighting_start(getattr(loss, "callbacks", list)(), epochs)
    _tried(specs.sampler.build, labels=labels)
    _tried(specs.head.build, in_features=_STAND_IN_FEATURES, n_classes=_STAND_IN_CLASSES)
    _tried(build_on_meta, specs.arch)
    for part in (*specs.post, specs.calibrator, specs.thresholds, *specs.loggers):
        if part is not None:
            _tried(part.build)


def _tried(build: Any, *args: Any, **kwargs: Any) -> Any:
    """``build(...)``; None when it fails other than by a user's mistake (see rehearse)."""
    try:
        return build(*args, **kwargs)
    except CxrltError:
        raise
    except Exception:  # noqa: BLE001 - the real build, on real inputs, reports it
        return None


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

    if options.from_run and _inside(out, Path(options.from_run)):
        raise CxrltError(
            f"--out {out} is inside the run --from-run {options.from_run} reads its model from: "
            "choose a new folder for the post-trained run."
        )
    if options.data is not None and not Path(options.data).exists():
        raise CxrltError(
            f"--data {options.data} does not exist: give the folder that holds the data set's "
            "CSV files and images."
        )
    check_run_folder(out, overwrite=options.overwrite or resume)
    check_cache_writable(cache_dir())


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve() == folder.resolve() or path.resolve().is_relative_to(folder.resolve())
