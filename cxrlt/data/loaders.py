"""fastai DataLoaders over images held as one uint8 array.

A batch is one tensor index, not a collation of per-item tensors, and stays uint8 until it
reaches the training device: the loader's cost per image is a memory copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader

from cxrlt.data.images import read_images
from cxrlt.data.split import patient_split
from cxrlt.data.table import LabelledImages
from cxrlt.registry import Resolved, resolve


class ArraySet:
    """Images (N, H, W) uint8 and multi-hot targets (N, C) as tensors."""

    n_inp = 1  # fastai: one input (the image), the rest is the target

    def __init__(self, images: np.ndarray, targets: np.ndarray) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.targets = torch.from_numpy(targets.astype(np.float32))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.targets[index]


class ArrayDataLoader(DataLoader):
    """A fastai DataLoader that batches an :class:`ArraySet` by indexing.

    When shuffling, the order comes from ``sampler.indices`` with a generator seeded by
    ``(seed, epoch)``, so it is repeatable and the same on every rank.
    """

    def __init__(
        self, dataset: ArraySet | None = None, sampler: Any = None, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def get_idxs(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = self.sampler.indices(rng) if self.sampler else rng.permutation(self.n)
        return order.tolist()

    def create_batches(self, samps):  # noqa: ANN001, ANN201 - fastai's signature
        indices = torch.as_tensor(list(samps), dtype=torch.long)
        stop = len(indices) - len(indices) % self.bs if self.drop_last else len(indices)
        for start in range(0, stop, self.bs):
            batch = indices[start : start + self.bs]
            yield self.dataset.images[batch].unsqueeze(1), self.dataset.targets[batch]

    def after_batch(self, batch):  # noqa: ANN001, ANN201 - fastai's signature
        images, targets = batch
        return images.float().div_(255), targets

    def new(self, dataset: ArraySet | None = None, cls: type | None = None, **kwargs: Any):
        kwargs.setdefault("sampler", self.sampler)
        kwargs.setdefault("seed", self.seed)
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
        device: Any = None,
    ) -> None:
        super().__init__(train, valid, path=Path("."), device=device)
        self.data, self.is_valid, self.specs = data, is_valid, specs

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
) -> CXRDataLoaders:
    """Load a registered data set, split it by patient and wrap both sides in DataLoaders."""
    specs = {"dataset": resolve("datasets", dataset), "sampler": resolve("samplers", sampler)}
    data: LabelledImages = specs["dataset"].build(path=None if path is None else str(path))
    is_valid = patient_split(data.patients, valid_frac=valid_frac, seed=seed)
    images = read_images(data.paths, size)
    labels = data.labels
    train_set = ArraySet(images[~is_valid], labels[~is_valid])
    valid_set = ArraySet(images[is_valid], labels[is_valid])
    train = ArrayDataLoader(
        train_set,
        sampler=specs["sampler"].build(labels=labels[~is_valid]),
        seed=seed,
        bs=bs,
        shuffle=True,
        drop_last=len(train_set) > bs,
    )
    valid = ArrayDataLoader(valid_set, bs=bs * 2, shuffle=False)
    return CXRDataLoaders(train, valid, data=data, is_valid=is_valid, specs=specs, device=device)
