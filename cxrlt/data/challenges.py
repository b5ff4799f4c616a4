"""The CXR-LT challenge data sets (2023, 2024, 2026) and a generic labelled CSV.

Each reads the organisers' files as they are distributed and checks them against the
official label list; see the README's "Real data" section for the folder layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pandas as pd

from cxrlt.data.labels import (
    CXR_LT_2023_CLASSES,
    CXR_LT_2024_CLASSES,
    CXR_LT_2024_GOLD_CLASSES,
    CXR_LT_2026_CLASSES,
    CXR_LT_2026_META_COLUMNS,
    CXR_LT_2026_TASK2_CLASSES,
    MIMIC_META_COLUMNS,
)
from cxrlt.data.table import (
    ID_COLUMN,
    PATH_COLUMN,
    LabelledImages,
    locate_images,
    read_csv,
    read_labelled_csv,
)
from cxrlt.errors import CxrltError


def data_folder(path: str | None, dataset: str, layout: str) -> Path:
    """The ``--data`` folder, which the real data sets cannot do without."""
    if not path:
        raise CxrltError(
            f"The dataset {dataset!r} needs --data PATH: the folder that holds {layout}."
        )
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CxrltError(f"--data {path}: no such folder. It should hold {layout}.")
    return folder


def optional_file(folder: Path, name: str | None) -> Path | None:
    return folder / name if name and (folder / name).is_file() else None


def _remove_listed(data: LabelledImages, removal: Path | None) -> LabelledImages:
    """Drop the images on the organisers' removal list, and say how many went."""
    if removal is None:
        note = "No removal list found: every labelled image is used for training."
        return replace(data, notes=(*data.notes, note))
    listed = set(read_csv(removal, text_columns=[ID_COLUMN])[ID_COLUMN])
    rows = [i for i, image_id in enumerate(data.image_ids) if image_id in listed]
    note = f"Removed {len(rows)} images listed in {removal.name} from training."
    trimmed = data.without(rows)
    return replace(trimmed, notes=(*trimmed.notes, note))


def read_test_images(test_csv: Path | None, image_root: Path) -> pd.DataFrame | None:
    """The unlabelled test images listed in ``test_csv`` (ImageID, path), if it exists."""
    if test_csv is None:
        return None
    frame = read_csv(test_csv, text_columns=[ID_COLUMN])
    if ID_COLUMN not in frame.columns:
        raise CxrltError(f"{test_csv} has no {ID_COLUMN!r} column.")
    paths, _ = locate_images(frame[ID_COLUMN], image_root)  # checked again when predicting
    return pd.DataFrame({ID_COLUMN: frame[ID_COLUMN], PATH_COLUMN: paths})


def cxr_lt_2026(
    *,
    path: str | None = None,
    train_csv: str = "train.csv",
    images: str = "images",
    removal_csv: str | None = "removal.csv",
    test_csv: str | None = "test_task1.csv",
    ignore_columns: Sequence[str] = (),
) -> LabelledImages:
    """CXR-LT 2026 Task 1 (PadChest, 30 labels), less the removal list, with its test images."""
    folder = data_folder(path, "cxr-lt-2026", f"{train_csv} and the {images}/ folder")
    root = folder / images
    data = read_labelled_csv(
        folder / train_csv,
        root,
        CXR_LT_2026_CLASSES,
        name="cxr-lt-2026",
        meta_columns=CXR_LT_2026_META_COLUMNS,
        ignore_columns=ignore_columns,
    )
    data = _remove_listed(data, optional_file(folder, removal_csv))
    return replace(
        data,
        test=read_test_images(optional_file(folder, test_csv), root),
        zero_shot_classes=CXR_LT_2026_TASK2_CLASSES,
    )


def _mimic(
    name: str,
    path: str | None,
    train_csv: str,
    images: str,
    classes: Sequence[str],
    ignore_columns: Sequence[str],
) -> LabelledImages:
    folder = data_folder(path, name, f"{train_csv} and the MIMIC-CXR-JPG files/ tree")
    return read_labelled_csv(
        folder / train_csv,
        folder / images,
        classes,
        name=name,
        id_column="dicom_id",
        path_column="fpath",
        patient_column="subject_id",
        meta_columns=MIMIC_META_COLUMNS,
        ignore_columns=ignore_columns,
    )


def cxr_lt_2024(
    *,
    path: str | None = None,
    train_csv: str = "train_labeled.csv",
    images: str = ".",
    subset: Literal["all", "gold"] = "all",
    ignore_columns: Sequence[str] = (),
) -> LabelledImages:
    """CXR-LT 2024 (MIMIC-CXR-JPG): 40 labels, or the 26-class gold-standard subset."""
    classes = CXR_LT_2024_CLASSES if subset == "all" else CXR_LT_2024_GOLD_CLASSES
    others = [c for c in CXR_LT_2024_CLASSES if c not in classes]
    return _mimic("cxr-lt-2024", path, train_csv, images, classes, [*ignore_columns, *others])


def cxr_lt_2023(
    *,
    path: str | None = None,
    train_csv: str = "train.csv",
    images: str = ".",
    ignore_columns: Sequence[str] = (),
) -> LabelledImages:
    """CXR-LT 2023 (MIMIC-CXR-JPG, 26 labels)."""
    return _mimic("cxr-lt-2023", path, train_csv, images, CXR_LT_2023_CLASSES, ignore_columns)


def labelled_csv(
    *,
    path: str | None = None,
    csv: str = "labels.csv",
    images: str = ".",
    image_column: str = "path",
    labels: Sequence[str] | None = None,
    patient_column: str | None = None,
    ignore_columns: Sequence[str] = (),
) -> LabelledImages:
    """Any labelled chest X-ray set: a CSV with an image path column and one 0/1 column per label.

    ``labels`` defaults to every column other than the image, patient and ignored ones.
    """
    folder = data_folder(path, "csv", f"{csv} and the images it names")
    if labels is None:
        header = read_csv(folder / csv, text_columns=[image_column]).columns
        skip = {image_column, patient_column, *ignore_columns}
        labels = [c for c in header if c not in skip]
    return read_labelled_csv(
        folder / csv,
        folder / images,
        labels,
        name="csv",
        id_column=image_column,
        patient_column=patient_column,
        meta_columns=[c for c in (image_column, patient_column) if c],
        ignore_columns=ignore_columns,
    )
