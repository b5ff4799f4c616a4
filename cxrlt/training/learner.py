"""``cxr_learner``: a fastai Learner assembled from registry names, on any fastai DataLoaders;
``load_learner``: one that ``learn.export()`` wrote, ready to predict.

The post-training methods (``learn.post``, ``.calibrate``, ``.thresholds``) are
:mod:`cxrlt.post`'s additions to fastai's Learner, a layer above this one: ``cxrlt``'s public
``cxr_learner`` and ``load_learner`` bring them, as fastai's ``all`` modules bring its own."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import fastai.callback.hook  # noqa: F401 - adds Learner.summary
import fastai.callback.schedule  # noqa: F401 - adds Learner.fit_one_cycle
import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.metrics import AccumMetric
from fastcore.basics import listify

from cxrlt.data.loaders import class_names
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import macro_average_precision
from cxrlt.model.build import build_model
from cxrlt.model.head_choice import choose_head
from cxrlt.model.network import backbone_head_splitter
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec
from cxrlt.training.optim import fused_adam
from cxrlt.training.progress import EpochLines, stdout_is_terminal


def _to_numpy_map(logits, targets) -> float:  # noqa: ANN001 - fastai passes tensors
    return macro_average_precision(logits.float().cpu().numpy(), targets.cpu().numpy())


def macro_ap_metric() -> AccumMetric:
    """Validation mAP from raw logits: ranking metrics need no activation."""
    return AccumMetric(_to_numpy_map, flatten=False, name="mAP")


def loss_callbacks(loss_func: Any) -> list:
    """The callbacks a loss asks for (deferred re-weighting, ...); none for plain modules."""
    return list(getattr(loss_func, "callbacks", list)())


def _training_targets(dls: DataLoaders) -> np.ndarray:
    """The training set's (N, C) targets, read once: for a fastai ``Datasets`` through its
    target pipeline alone (no image is opened), else item by item from the dataset."""
    dataset = dls.train_ds
    tls = getattr(dataset, "tls", None)
    try:
        if tls is not None:
            rows = list(tls[getattr(dataset, "n_inp", 1)])
        else:
            rows = [dataset[i][-1] for i in range(len(dataset))]
    except (TypeError, NotImplementedError, IndexError, KeyError) as error:
        raise CxrltError(
            f"cxr_learner cannot read the training targets of these DataLoaders ({error!r}: "
            "the training dataset has no length or no (image, targets) items). Give the "
            "positives per class and the number of training images instead: "
            "dls.class_counts = [...] (one count per class) and dls.n_train = N."
        ) from None
    targets = np.stack([np.asarray(torch.as_tensor(row).cpu()) for row in rows])
    if targets.ndim != 2:
        raise CxrltError(
            f"cxr_learner trains multi-label classifiers: each training target must be a 0/1 "
            f"row with one value per class, but they have shape {targets.shape[1:]}. Use "
            "MultiCategoryBlock (not CategoryBlock) in a DataBlock, or one-hot targets."
        )
    return targets


def training_label_counts(dls: DataLoaders) -> tuple[np.ndarray, int]:
    """Positives per class in the training set and its number of images (what long-tail
    losses weight by): ``dls.class_counts`` and ``dls.n_train`` where the DataLoaders have them
    (cxrlt's do), else counted from the training targets."""
    counts, n_train = getattr(dls, "class_counts", None), getattr(dls, "n_train", None)
    if counts is None or n_train is None:
        targets = _training_targets(dls)
        counts = targets.sum(axis=0) if counts is None else counts
        n_train = len(targets) if n_train is None else n_train
    return np.asarray(counts), int(n_train)


def cxr_learner(
    dls: DataLoaders,
    arch: Resolved | Spec | str = "resnet18",
    loss: Resolved | Spec | str = "bce",
    *,
    head: Resolved | Spec | str | None = None,
    pretrained: bool | None = None,
    **learner_kwargs: Any,
) -> Learner:
    """A Learner whose model, loss and parameter groups come from registry entries: each of
    ``arch``, ``loss`` and ``head`` a name with parameters, a :class:`~cxrlt.spec.Spec` or a
    :class:`~cxrlt.registry.Resolved`.

    ``dls`` are cxrlt's (:func:`cxrlt.data.loaders.cxr_dataloaders`) or any fastai DataLoaders
    of greyscale images, (B, 1, H, W) in [0, 1], with 0/1 targets, one column per class: a
    ``DataBlock`` with ``MultiCategoryBlock``, or PyTorch loaders wrapped as
    ``DataLoaders(train_dl, valid_dl)``. The classes and per-class counts come from
    :func:`~cxrlt.data.loaders.class_names` and :func:`training_label_counts`.

    ``head`` None takes the head the loss declares, else linear, as ``cxrlt run`` does
    (:func:`cxrlt.model.head_choice.choose_head`). ``pretrained`` (if given) overrides the
    spec's, on backbones that declare it. The resolved specs are kept in ``learn.specs`` so a
    run directory can record them. The optimiser is fastai's Adam stepped by torch's fused
    kernel (:mod:`cxrlt.training.optim`) unless ``opt_func`` says otherwise. When stdout is no
    terminal, progress is one line per epoch (:mod:`cxrlt.training.progress`) instead of
    fastai's bars.
    """
    loss_spec = resolve("losses", loss)
    specs: dict[str, Resolved] = {
        "arch": resolve("backbones", arch, pretrained=pretrained),
        "head": choose_head(loss_spec, head)[0],
        "loss": loss_spec,
    }
    classes = class_names(dls)
    counts, n_train = training_label_counts(dls)
    if len(counts) != len(classes):
        raise CxrltError(
            f"These DataLoaders name {len(classes)} classes but count positives for "
            f"{len(counts)}: make dls.classes (or vocab) and the target columns agree."
        )
    model = build_model(specs["arch"], specs["head"], len(classes))
    loss_func = specs["loss"].build(class_counts=counts.tolist(), n_items=n_train)
    learner_kwargs.setdefault("metrics", [macro_ap_metric()])
    learner_kwargs.setdefault("opt_func", fused_adam)
    # first of the given callbacks, so that it holds the logger before the run log chains to it
    lines = [] if stdout_is_terminal() else [EpochLines()]
    learner_kwargs["cbs"] = [
        *lines,
        *loss_callbacks(loss_func),
        *listify(learner_kwargs.get("cbs")),
    ]
    learn = Learner(
        dls, model, loss_func=loss_func, splitter=backbone_head_splitter, **learner_kwargs
    )
    if lines:
        learn.remove_cb(learn.progress)  # fastai's bars, which the lines replace
    learn.specs = {**getattr(dls, "specs", {}), **specs}
    return learn


def load_learner(path: str | Path, cpu: bool = True) -> Learner:
    """fastai's ``load_learner`` for a file ``learn.export(path)`` wrote. It needs no training
    data: ``predict`` and ``dls.test_dl`` decode new images as training did. Only load files
    you trust (pickle)."""
    from fastai.learner import load_learner as fastai_load_learner

    path = Path(path)
    if not path.is_file():
        raise CxrltError(
            f"{path}: no such file. Pass the file learn.export() wrote (export.pkl in "
            "learn.path unless given another name)."
        )
    try:
        learn = fastai_load_learner(path, cpu=cpu)
    except ModuleNotFoundError as error:
        raise CxrltError(
            f"{path} needs the module {error.name!r}, which is not installed here: install the "
            "plugin the Learner was trained with, then load it again."
        ) from None
    except (pickle.UnpicklingError, EOFError, RuntimeError) as error:
        raise CxrltError(
            f"{path} is not a Learner written by learn.export() ({error}); export it again."
        ) from None
    if not isinstance(learn, Learner):
        raise CxrltError(
            f"{path} holds a {type(learn).__name__}, not a Learner; pass the file "
            "learn.export() wrote."
        )
    return learn
