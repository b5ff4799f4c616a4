"""fastai DataLoaders over decoded images held in one uint8 array (the memory-mapped cache).

A batch is one fancy index into that array, not a collation of per-item tensors, and stays
uint8 until it reaches the training device, where it becomes float and is augmented.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader

from cxrlt.data.augment import BatchAugment
from cxrlt.data.cache import prepare_images
from cxrlt.data.images import conversion_notes
from cxrlt.data.problems import Problem, check, skipped_table
from cxrlt.data.split import patient_split
from cxrlt.data.table import LabelledImages
from cxrlt.registry import Resolved, resolve


class ArraySet:
    """One split: rows of a shared (M, H, W) uint8 image array and their (N, C) targets."""

    n_inp = 1  # fastai: one input (the image), the rest is the target

    def __init__(self, images: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> None:
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)
        self.targets = torch.from_numpy(targets.astype(np.float32))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.images[self.rows[index]].copy()), self.targets[index]

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.from_numpy(self.images[self.rows[indices]])
        return pixels.unsqueeze(1), self.targets[torch.from_numpy(indices)]


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
        images, targets = batch
        images = images.float().div_(255)
        if self.augment is not None and self.generator is not None:
            images = self.augment(images, self.generator)
        return images, targets

    def new(self, dataset: ArraySet | None = None, cls: type | None = None, **kwargs: Any):
        for name in ("sampler", "seed", "augment"):
            kwargs.setdefault(name, getattr(self, name))
        return super().new(dataset, cls, **kwargs)


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
        device: Any = None,
    ) -> None:
        super().__init__(train, valid, path=Path("."), device=device)
        self.data, self.is_valid, self.specs, self.skipped = data, is_valid, specs, skipped

    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes

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
    dataset: str = "synthetic",
    *,
    path: str | Path | None = None,
    size: int = 64,
    bs: int = 64,
    sampler: str = "uniform",
    valid_frac: float = 0.2,
    seed: int = 0,
    device: Any = None,
    skip_bad: bool = False,
    letterbox: bool = False,
    augment: bool = False,
    workers: int | None = None,
) -> CXRDataLoaders:
    """Load a registered data set, decode it once into the cache, split it by patient.

    Bad rows stop the run with a summary unless ``skip_bad``; then they are left out and
    listed in ``dls.skipped``.
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
    train_set = ArraySet(cached.images, cache_rows[~is_valid], labels[~is_valid])
    valid_set = ArraySet(cached.images, cache_rows[is_valid], labels[is_valid])
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
        device=device,
    )
