"""The embedded data set: synthetic chest X-rays written in the CXR-LT 2026 format.

It goes through the same reader as the real data, so a newcomer's first run exercises the
real loading path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cxrlt.data.challenges import read_test_images
from cxrlt.data.labels import CXR_LT_2026_CLASSES
from cxrlt.data.synthetic import GENERATOR_VERSION, STUDY_COLUMNS, write_synthetic_cxr
from cxrlt.data.table import LabelledImages, ViewColumns, read_labelled_csv
from cxrlt.errors import CxrltError
from cxrlt.io import cache_dir

STUDY_VIEWS = ViewColumns(study=STUDY_COLUMNS[0], projection=STUDY_COLUMNS[1])


def synthetic_folder(
    n_images: int, size: int, imbalance: float, seed: int, n_test: int, views: int = 1
) -> Path:
    """The cache folder for one parameter set (the generator version is part of the key)."""
    key = f"v{GENERATOR_VERSION}-n{n_images}-px{size}-imb{imbalance:g}-seed{seed}"
    key += f"-test{n_test}" if n_test else ""
    return cache_dir() / "synthetic" / (f"{key}-views{views}" if views > 1 else key)


def synthetic_dataset(
    *,
    path: str | None = None,
    n_images: int = 2000,
    size: int = 128,
    imbalance: float = 100.0,
    seed: int = 0,
    n_test: int = 0,
    views: int = 1,
) -> LabelledImages:
    """Generate (first time only) and read the synthetic set; ``path`` replaces the cache.

    ``n_test`` adds unlabelled test images (``test_task1.csv``, as in CXR-LT 2026), so the
    submission path can be tried; their labels are kept in ``test_labels.csv`` beside it.
    ``views=2`` makes studies of two images (PA or AP, then lateral) with the study's labels,
    each image's study and projection read into the table, test images' included.
    """
    for name, value, least in (
        ("n_images", n_images, 10),
        ("size", size, 16),
        ("imbalance", imbalance, 1),
        ("n_test", n_test, 0),
        ("views", views, 1),
    ):
        if value < least:
            raise CxrltError(
                f"Parameter {name!r} of the dataset 'synthetic' must be at least "
                f"{least}, got {value}."
            )
    if views > 2:
        raise CxrltError(f"Parameter 'views' of the dataset 'synthetic' is 1 or 2, got {views}.")
    folder = (
        Path(path) if path else synthetic_folder(n_images, size, imbalance, seed, n_test, views)
    )
    write_synthetic_cxr(
        folder,
        n_images=n_images,
        size=size,
        imbalance=imbalance,
        seed=seed,
        n_test=n_test,
        views=views,
    )
    study_views = STUDY_VIEWS if views > 1 else None
    data = read_labelled_csv(
        folder / "train.csv",
        folder / "images",
        CXR_LT_2026_CLASSES,
        name="synthetic",
        views=study_views,
    )
    test_csv = folder / "test_task1.csv"
    if not test_csv.exists():
        return data
    return replace(data, test=read_test_images(test_csv, folder / "images", study_views))
