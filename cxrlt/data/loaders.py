"""fastai DataLoaders over decoded images held in one uint8 array (the memory-mapped cache).

A batch is one fancy index into that array, not a collation of per-item tensors, and stays
uint8 until it reaches the training device, where it becomes float and is augmented.

The loaders speak fastai's idioms without its type-dispatched transforms (which would cost
time on every batch): ``vocab``, ``show_batch``, ``show_results``, ``decode_batch`` (what
``learn.predict`` decodes with), ``test_dl`` for new image files or arrays, decoded as the
training images were, and ``new_empty`` (what ``learn.export`` pickles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.data.transforms import MultiCategory

from cxrlt.data.augment import BatchAugment
from cxrlt.data.cache import prepare_images
from cxrlt.data.images import conversion_notes, read_images
from cxrlt.data.problems import Problem, check, skipped_table
from cxrlt.data.split import patient_split
from cxrlt.data.table import LabelledImages
from cxrlt.errors import CxrltError
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec

# Items of ``test_dl``: image files, or uint8 arrays already at the training size.
TestItems = Sequence[str | Path | np.ndarray] | np.ndarray


class ArraySet:
    """One split: rows of a shared (M, H, W) uint8 image array, their (N, C) targets (None for
    unlabelled images) and the class names (fastai's ``vocab``)."""

    n_inp = 1  # fastai: one input (the image), the rest is the target

    def __init__(
        self,
        images: np.ndarray,
        rows: np.ndarray,
        targets: np.ndarray | None,
        vocab: Sequence[str] = (),
    ) -> None:
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)
        self.targets = None if targets is None else torch.from_numpy(targets.astype(np.float32))
        self.vocab = tuple(vocab)

    @property
    def c(self) -> int:
        """fastai's number of outputs: one per class."""
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        pixels = torch.from_numpy(self.images[self.rows[index]].copy())
        return (pixels,) if self.targets is None else (pixels, self.targets[index])

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, ...]:
        pixels = torch.from_numpy(self.images[self.rows[indices]]).unsqueeze(1)
        if self.targets is None:
            return (pixels,)
        return pixels, self.targets[torch.from_numpy(indices)]

    def new_empty(self) -> ArraySet:
        """No images, the same classes: what an exported Learner keeps."""
        empty = np.empty((0, *self.images.shape[1:]), np.uint8)
        return ArraySet(empty, np.arange(0), None, self.vocab)


class ArrayDataLoader(DataLoader):
    """A fastai DataLoader that batches an :class:`ArraySet` by indexing.

    Order and augmentation come from generators seeded by ``(seed, epoch)``: repeatable, and
    the same on every rank of a distributed run.
    """

    def __init__(
        self,
        dataset: ArraySet | None = None,
        sampler: Any = None,
        seed: int = 0,
        augment: BatchAugment | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.sampler, self.seed, self.augment, self.epoch = sampler, seed, augment, 0
        self.generator: torch.Generator | None = None

    def get_idxs(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        rng = np.random.default_rng([self.seed, self.epoch])
        self.generator = torch.Generator(device=self.device or "cpu")
        self.generator.manual_seed(int(rng.integers(2**62)))
        self.epoch += 1
        order = self.sampler.indices(rng) if self.sampler else rng.permutation(self.n)
        return order.tolist()

    def create_batches(self, samps):  # noqa: ANN001, ANN201 - fastai's signature
        indices = np.fromiter(samps, dtype=np.int64)
        stop = len(indices) - len(indices) % self.bs if self.drop_last else len(indices)
        for start in range(0, stop, self.bs):
            yield self.dataset.batch(indices[start : start + self.bs])

    def after_batch(self, batch):  # noqa: ANN001, ANN201 - fastai's signature
        images, *targets = batch
        images = images.float().div_(255)
        if self.augment is not None and self.generator is not None:
            images = self.augment(images, self.generator)
        return (images, *targets)

    def new(self, dataset: ArraySet | None = None, cls: type | None = None, **kwargs: Any):
        for name in ("sampler", "seed", "augment"):
            kwargs.setdefault(name, getattr(self, name))
        return super().new(dataset, cls, **kwargs)

    def decode_batch(self, batch: tuple, max_n: int = 9) -> list[tuple]:
        """Per image (at most ``max_n``): its pixels as (1, H, W) in [0, 1] on the CPU, then
        each further part of the batch (targets, predictions) as the names of its positive
        classes; ``learn.predict`` returns these names."""
        images, *parts = batch
        names = [[self.label_names(row) for row in part[:max_n]] for part in parts]
        return [
            (image.cpu(), *labels) for image, *labels in zip(images[:max_n], *names, strict=True)
        ]

    def label_names(self, row: torch.Tensor) -> MultiCategory:
        """The classes a 0/1 (or boolean) row marks positive, as fastai's ``MultiCategory``."""
        return MultiCategory([self.vocab[i] for i in torch.nonzero(row > 0.5).flatten()])

    def show_batch(
        self, b: tuple | None = None, max_n: int = 9, ctxs: Any = None, **kwargs: Any
    ) -> list:
        """Greyscale images titled with their labels; ``kwargs`` go to fastai's ``get_grid``
        (``figsize``, ``nrows``, ...). Returns the matplotlib axes."""
        items = self.decode_batch(self.one_batch() if b is None else b, max_n)
        axes = _show_images(items, ctxs, **kwargs)
        for ax, (_, *labels) in zip(axes, items, strict=True):
            if labels:  # a test loader's images have none
                ax.set_title(";".join(labels[0]))
        return axes

    def show_results(
        self, b: tuple, out: torch.Tensor, max_n: int = 9, ctxs: Any = None, **kwargs: Any
    ) -> list:
        """Images titled with their labels over the predicted ones (``out``: a batch of 0/1
        decisions, as ``learn.show_results`` passes them): green where they agree, red where
        not."""
        items = self.decode_batch((*b, out), max_n)
        axes = _show_images(items, ctxs, **kwargs)
        for ax, (_, labels, predicted) in zip(axes, items, strict=True):
            color = "green" if list(labels) == list(predicted) else "red"
            ax.set_title(f"{';'.join(labels)}\n{';'.join(predicted)}", color=color)
        return axes


def _show_images(items: list[tuple], ctxs: Any, **kwargs: Any) -> list:
    """Draw the images of decoded items in grey on ``ctxs``, or on a new grid; their axes."""
    from fastai.torch_core import show_image
    from fastai.vision.data import get_grid

    axes = list(get_grid(len(items), **kwargs) if ctxs is None else ctxs)[: len(items)]
    for (image, *_), ax in zip(items, axes, strict=True):
        show_image(image[0].numpy(), ctx=ax, cmap="gray", vmin=0, vmax=1)
    return axes


def decode_test_items(items: TestItems, size: int, *, letterbox: bool) -> np.ndarray:
    """New images as (N, size, size) uint8, as training decoded its images: files through
    :mod:`cxrlt.data.images` (same size, letterbox and windowing), arrays checked to be uint8
    at the training size already. A file that cannot be decoded stops it, named."""
    items = list(items)
    images = np.empty((len(items), size, size), np.uint8)
    files = [i for i, item in enumerate(items) if not isinstance(item, np.ndarray)]
    for i, item in enumerate(items):
        if not isinstance(item, np.ndarray | str | Path):
            raise CxrltError(
                f"test_dl: item {i} is a {type(item).__name__}; give image files (str or Path: "
                "decoded and resized as the training images were) or uint8 arrays of shape "
                f"({size}, {size})."
            )
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.shape != (size, size):
                raise CxrltError(
                    f"test_dl: item {i} is a {item.dtype} array of shape {item.shape}; arrays "
                    f"must be uint8 of shape ({size}, {size}), the training size. Pass the "
                    "image file instead: it is decoded and resized as the training images were."
                )
            images[i] = item
    if files:
        images[files] = read_images([items[i] for i in files], size, letterbox=letterbox)
    return images


class CXRDataLoaders(DataLoaders):
    """Train and validation loaders plus what the rest of a run needs to know about the data."""

    def __init__(
        self,
        train: ArrayDataLoader,
        valid: ArrayDataLoader,
        *,
        data: LabelledImages,
        is_valid: np.ndarray,
        specs: dict[str, Resolved],
        skipped: pd.DataFrame,
        size: int,
        letterbox: bool = False,
        device: Any = None,
    ) -> None:
        super().__init__(train, valid, path=Path("."), device=device)
        self.data, self.is_valid, self.specs, self.skipped = data, is_valid, specs, skipped
        self.size, self.letterbox = size, letterbox

    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes

    @property
    def vocab(self) -> tuple[str, ...]:
        """fastai's name for the classes."""
        return self.classes

    def test_dl(self, items: TestItems, rm_type_tfms: Any = None, **kwargs: Any) -> ArrayDataLoader:
        """A loader of new images (files, or uint8 arrays at the training size) decoded as the
        training images were, without labels, in the given order: for ``learn.get_preds(dl=...)``
        and ``learn.predict``. ``kwargs`` go to the loader (``bs``, ...); ``rm_type_tfms`` is
        fastai's and unused: these loaders have no type transforms."""
        images = decode_test_items(items, self.size, letterbox=self.letterbox)
        dataset = ArraySet(images, np.arange(len(images)), None, self.classes)
        return self.valid.new(dataset, **kwargs)

    def new_empty(self) -> CXRDataLoaders:
        """The same loaders without images, labels or split (what ``learn.export`` pickles): they
        still name the classes and decode new images as training did."""
        train, valid = (dl.new(dl.dataset.new_empty(), sampler=None) for dl in self.loaders)
        return CXRDataLoaders(
            train,
            valid,
            data=replace(self.data.without(range(len(self.data))), test=None),
            is_valid=np.zeros(0, bool),
            specs=self.specs,
            skipped=self.skipped.iloc[:0],
            size=self.size,
            letterbox=self.letterbox,
            device=self.device,
        )

    @property
    def class_counts(self) -> np.ndarray:
        """Positives per class in the training split (what long-tail losses weight by)."""
        return self.data.labels[~self.is_valid].sum(axis=0)

    @property
    def n_train(self) -> int:
        return int((~self.is_valid).sum())

    def split_table(self, halves: np.ndarray | None = None) -> pd.DataFrame:
        """ImageID, PatientID and side of every image, and with ``halves`` the validation
        half (0/1, empty for training images) it is chosen or reported in: what the run
        directory records."""
        frame = self.data.frame[["ImageID", "PatientID"]].copy()
        frame["split"] = np.where(self.is_valid, "valid", "train")
        if halves is not None:
            frame["half"] = pd.array(np.full(len(frame), pd.NA), dtype="Int64")
            frame.loc[self.is_valid, "half"] = halves
        return frame


def class_names(dls: DataLoaders) -> tuple[str, ...]:
    """The classes, in the order of the target columns: ``dls.classes`` (cxrlt's loaders, or
    set by hand), else fastai's ``dls.vocab`` (a ``DataBlock`` with ``MultiCategoryBlock``)."""
    for attribute in ("classes", "vocab"):
        names = getattr(dls, attribute, None)
        if names is not None:
            return tuple(str(name) for name in names)
    raise CxrltError(
        "cxr_learner cannot tell the classes of these DataLoaders: they have neither `classes` "
        "nor fastai's `vocab`. Name the target columns before calling it: "
        "dls.classes = ['Atelectasis', 'Cardiomegaly', ...] (one name per column, in order)."
    )


def _leave_out_bad(data: LabelledImages, skip_bad: bool) -> tuple[LabelledImages, pd.DataFrame]:
    """Stop with a summary of the bad rows, or drop them and say which they were."""
    rows = check(data.source, data.problems, data.image_ids, data.lines, skip=skip_bad)
    skipped = skipped_table(data.problems, data.image_ids, data.lines)
    return data.without(rows), skipped


def _decode_problems(failures: dict[int, str]) -> tuple[Problem, ...]:
    if not failures:
        return ()
    rows = tuple(sorted(failures))
    details = tuple(failures[row] for row in rows)
    return (
        Problem(
            "image could not be decoded", rows, "Replace the files or remove their rows.", details
        ),
    )


def cxr_dataloaders(
    dataset: Resolved | Spec | str = "synthetic",
    *,
    path: str | Path | None = None,
    size: int = 64,
    bs: int = 64,
    sampler: Resolved | Spec | str = "uniform",
    valid_frac: float = 0.2,
    seed: int = 0,
    device: Any = None,
    skip_bad: bool = False,
    letterbox: bool = False,
    augment: bool = False,
    workers: int | None = None,
) -> CXRDataLoaders:
    """Load a registered data set, decode it once into the cache, split it by patient.

    ``dataset`` and ``sampler`` are each a name with parameters (``"rfs:t=0.1"``), a
    :class:`~cxrlt.spec.Spec` or a :class:`~cxrlt.registry.Resolved` (resolved once by the
    caller, as ``cxrlt run`` does). Bad rows stop the run with a summary unless
    ``skip_bad``; then they are left out and listed in ``dls.skipped``.
    """
    specs = {"dataset": resolve("datasets", dataset), "sampler": resolve("samplers", sampler)}
    data: LabelledImages = specs["dataset"].build(path=None if path is None else str(path))
    data, skipped = _leave_out_bad(data, skip_bad)
    cached = prepare_images(data.paths, size, letterbox=letterbox, workers=workers)
    converted = tuple(conversion_notes(cached.converted, data.image_ids))
    data = replace(data, problems=_decode_problems(cached.failures), notes=data.notes + converted)
    data, skipped_decoding = _leave_out_bad(data, skip_bad)
    cache_rows = np.delete(np.arange(len(cached.images)), sorted(cached.failures))

    labels = data.labels
    is_valid = patient_split(data.patients, labels, valid_frac=valid_frac, seed=seed)
    train_set = ArraySet(cached.images, cache_rows[~is_valid], labels[~is_valid], data.classes)
    valid_set = ArraySet(cached.images, cache_rows[is_valid], labels[is_valid], data.classes)
    train = ArrayDataLoader(
        train_set,
        sampler=specs["sampler"].build(labels=labels[~is_valid]),
        seed=seed,
        augment=BatchAugment() if augment else None,
        bs=bs,
        shuffle=True,
        drop_last=len(train_set) > bs,
    )
    valid = ArrayDataLoader(valid_set, bs=bs * 2, shuffle=False)
    return CXRDataLoaders(
        train,
        valid,
        data=data,
        is_valid=is_valid,
        specs=specs,
        skipped=pd.concat([skipped, skipped_decoding], ignore_index=True),
        size=size,
        letterbox=letterbox,
        device=device,
    )
