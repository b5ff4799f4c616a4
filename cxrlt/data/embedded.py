"""The embedded data set: synthetic chest X-rays written in the CXR-LT 2026 format.

It goes through the same reader as the real data, so a newcomer's first run exercises the
real loading path.
"""

from __future__ import annotations

from pathlib import Path

from cxrlt.data.labels import CXR_LT_2026_CLASSES
from cxrlt.data.synthetic import GENERATOR_VERSION, write_synthetic_cxr
from cxrlt.data.table import LabelledImages, read_labelled_csv
from cxrlt.errors import CxrltError
from cxrlt.io import cache_dir


def synthetic_folder(n_images: int, size: int, imbalance: float, seed: int) -> Path:
    """The cache folder for one parameter set (the generator version is part of the key)."""
    key = f"v{GENERATOR_VERSION}-n{n_images}-px{size}-imb{imbalance:g}-seed{seed}"
    return cache_dir() / "synthetic" / key


def synthetic_dataset(
    *,
    path: str | None = None,
    n_images: int = 2000,
    size: int = 128,
    imbalance: float = 100.0,
    seed: int = 0,
) -> LabelledImages:
    """Generate (first time only) and read the synthetic set; ``path`` replaces the cache."""
    for name, value, least in (
        ("n_images", n_images, 10),
        ("size", size, 16),
        ("imbalance", imbalance, 1),
    ):
        if value < least:
            raise CxrltError(
                f"Parameter {name!r} of the dataset 'synthetic' must be at least "
                f"{least}, got {value}."
            )
    folder = Path(path) if path else synthetic_folder(n_images, size, imbalance, seed)
    write_synthetic_cxr(folder, n_images=n_images, size=size, imbalance=imbalance, seed=seed)
    return read_labelled_csv(
        folder / "train.csv", folder / "images", CXR_LT_2026_CLASSES, name="synthetic"
    )
