"""The CXR-LT challenge data sets (2023, 2024, 2026) and a generic labelled CSV.

Each reads the organisers' files as they are distributed and checks them against the
official label list; see docs/guides/real-data.md for the folder layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    PATIENT_COLUMN,
    LabelledImages,
    ViewColumns,
    locate_images,
    read_csv,
    read_labelled_csv,
    read_patient_file,
    strip_ids,
    study_note,
)
from cxrlt.errors import CxrltError

# Every reader's split_by: how the validation split groups images. "image" is for tables
# without usable PatientIDs, and must be asked for (the split then no longer keeps a
# patient's images on one side).
SplitBy = Literal["patient", "image"]


def data_folder(path: str | None, dataset: str, layout: str) -> Path:
    """The ``--data`` folder, which the real data sets cannot do without."""
    if not path:
        raise CxrltError(
            f"The dataset {dataset!r} needs --data PATH: the folder that holds {layout}."
        )
    folder = Path(path).expanduser()
    if folder.is_file():
        raise CxrltError(
            f"--data {path} is a file, where a folder is expected: point --data at the folder "
            f"that holds {layout} ({folder.parent}, if it holds this file)."
        )
    if not folder.is_dir():
        raise CxrltError(f"--data {path}: no such folder. It should hold {layout}.")
    return folder


@dataclass(frozen=True)
class ChallengeFile:
    """One file a challenge reader takes: the parameter that names it, and the names looked
    for in the ``--data`` folder when it is not named (as the organisers ship it, then short)."""

    parameter: str
    role: str
    names: tuple[str, ...] = ()
    required: bool = False

    def find(self, folder: Path, named: str | None, dataset: str) -> Path | None:
        """The file the user named (it must exist), else the one candidate present, if any."""
        if named:
            path = folder / Path(named).expanduser()
            if path.is_dir():
                raise CxrltError(
                    f"{dataset}:{self.parameter}={named}: {path} is a folder, where the "
                    f"{self.role} CSV file is expected: name the file."
                )
            if not path.is_file():
                look = f" to look for {' or '.join(self.names)}" if self.names else ""
                raise CxrltError(
                    f"{dataset}:{self.parameter}={named}: {path} does not exist. Correct the "
                    f"path (relative to --data, or absolute), or leave {self.parameter} out{look}."
                )
            return path
        found: list[Path] = []
        for path in (folder / name for name in self.names):
            # A case-insensitive file system finds Removal.csv under removal.csv too.
            if path.is_file() and not any(path.samefile(other) for other in found):
                found.append(path)
        if len(found) > 1:
            raise CxrltError(
                f"{folder} holds two {self.role} files, {' and '.join(p.name for p in found)}: "
                f"name the one to use with --dataset {dataset}:{self.parameter}=NAME."
            )
        if not found and self.required:
            raise CxrltError(
                f"{folder} has no {self.role} file ({' or '.join(self.names)}): point --data "
                "at the folder that holds it, or name it with --dataset "
                f"{dataset}:{self.parameter}=NAME."
            )
        return found[0] if found else None


PADCHEST_LABELS = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
# The challenge's files give each image's patient and day; PadChest's own label file also its
# study and projection (PA, AP, L, ...).
PADCHEST_VIEWS = ViewColumns(study="StudyID", date="StudyDate_DICOM", projection="Projection")
# MIMIC-CXR's study ID, and the DICOM view position where a file carries it.
MIMIC_VIEWS = ViewColumns(study="study_id", projection="ViewPosition")
# The one list of the CXR-LT 2026 files and the names they are found under
# (docs/guides/real-data.md lists them; tests check it).
CXR_LT_2026_FILES: dict[str, ChallengeFile] = {
    file.parameter: file
    for file in (
        ChallengeFile(
            "train_csv", "training label", ("CXRLT_2026_training.csv", "train.csv"), required=True
        ),
        ChallengeFile("removal_csv", "removal list", ("Removal.csv", "removal.csv")),
        ChallengeFile("test_csv", "test list", ("CXRLT_2026_TEST_ALL_TASK1.csv", "test_task1.csv")),
        ChallengeFile("patients_csv", f"patient ID ({PADCHEST_LABELS})"),
    )
}


def read_image_list(
    csv_path: Path,
    image_root: Path,
    views: ViewColumns | None = None,
    known: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The images a removal or test list names (ImageID, path), and notes on how it was read;
    with ``views``, their study and projection too, where the list (or ``known``, first, as
    for :meth:`ViewColumns.read`) gives them.

    Only named columns are read: the 2026 test CSV ends in 30 columns without a name. Paths
    are checked when predicting, not here: a removal list names images that need not be there.
    """
    optional = [PATIENT_COLUMN, *views.columns] if views else []
    read = read_csv(
        csv_path, text_columns=[ID_COLUMN, *optional], columns=[ID_COLUMN], optional=optional
    )
    ids, stripped = strip_ids(read.frame[ID_COLUMN], read.lines, csv_path)
    paths, _ = locate_images(ids, image_root)
    table = pd.DataFrame({ID_COLUMN: ids, PATH_COLUMN: paths})
    notes = (*read.notes, stripped) if stripped else read.notes
    if views:
        table = table.join(views.read(read.frame.assign(**{ID_COLUMN: ids}), known))
        notes = (*notes, study_note(table, csv_path) or "")
    return table, tuple(note for note in notes if note)


def read_test_images(
    test_csv: Path | None, image_root: Path, views: ViewColumns | None = None
) -> pd.DataFrame | None:
    """The unlabelled test images listed in ``test_csv`` (ImageID, path, and with ``views``
    their study and projection), if it exists, for a test list cxrlt wrote itself (the
    embedded data set): how it was read is not reported."""
    return None if test_csv is None else read_image_list(test_csv, image_root, views)[0]


def _remove_ids(data: LabelledImages, ids: pd.Series) -> tuple[LabelledImages, int]:
    listed = set(ids)
    rows = [i for i, image_id in enumerate(data.image_ids) if image_id in listed]
    return data.without(rows), len(rows)


def _keep_test_images_out(
    data: LabelledImages,
    removal_csv: Path | None,
    test_csv: Path | None,
    image_root: Path,
    views: ViewColumns | None = None,
    known: pd.DataFrame | None = None,
) -> LabelledImages:
    """Drop from training the images on the removal list, then those on the test list, each
    counted, and keep the test images (with their ``views``) for prediction. Finding neither
    list is a warning: nothing would then keep the challenge's evaluation images out of
    training."""
    notes, warnings = list(data.notes), list(data.warnings)
    record = {"removal": None, "test": None}
    test = None
    if removal_csv is not None:
        listed, read_notes = read_image_list(removal_csv, image_root)
        notes += read_notes
        data, removed = _remove_ids(data, listed[ID_COLUMN])
        notes.append(f"Removed {removed} images listed in {removal_csv.name} from training.")
        record.update(removal=str(removal_csv), removed_by_removal_list=removed)
    if test_csv is not None:
        test, read_notes = read_image_list(test_csv, image_root, views, known)
        notes += read_notes
        data, removed = _remove_ids(data, test[ID_COLUMN])
        notes.append(
            f"Removed {removed} training images that are on the test list {test_csv.name}."
            if removed
            else f"None of the {len(test)} images on the test list {test_csv.name} is trained on."
        )
        record.update(test=str(test_csv), removed_by_test_list=removed)
    if removal_csv is None and test_csv is None:
        record["leak_check"] = "no removal or test list found"
        looked_for = [n for p in ("removal_csv", "test_csv") for n in CXR_LT_2026_FILES[p].names]
        warnings.append(
            f"No removal list and no test list found (looked for {', '.join(looked_for)}): "
            "nothing keeps the challenge's development and test images out of training. Put the "
            "organisers' files beside the training CSV, or name them with removal_csv= and "
            "test_csv=."
        )
    elif removal_csv is None:
        record["leak_check"] = "test list applied; no removal list found"
        notes.append("No removal list found: only the test list's images are kept out.")
    else:
        record["leak_check"] = (
            "removal and test lists applied" if test_csv else "removal list applied; no test list"
        )
    return replace(
        data,
        notes=tuple(notes),
        warnings=tuple(warnings),
        test=test,
        provenance={**data.provenance, **record},
    )


def cxr_lt_2026(
    *,
    path: str | None = None,
    train_csv: str | None = None,
    images: str = "images",
    removal_csv: str | None = None,
    test_csv: str | None = None,
    patients_csv: str | None = None,
    ignore_columns: Sequence[str] = (),
    split_by: SplitBy = "patient",
) -> LabelledImages:
    """CXR-LT 2026 Task 1 (PadChest, 30 labels) with its test images, none of them trained on.

    A file parameter left out is looked for under the names of ``CXR_LT_2026_FILES``; a file
    named must exist. ``patients_csv`` (PadChest's own label CSV) restores the PatientIDs
    that a spreadsheet turned into numbers like 1.90E+38 and gives each image's study and
    projection (without it a study is one patient's images of one day, where the PatientID
    is intact); ``split_by=image`` makes each image its own patient.
    """
    name, files = "cxr-lt-2026", CXR_LT_2026_FILES
    train_names = " or ".join(files["train_csv"].names)
    folder = data_folder(path, name, f"{train_csv or train_names} and the {images}/ folder")
    named = {
        "train_csv": train_csv,
        "removal_csv": removal_csv,
        "test_csv": test_csv,
        "patients_csv": patients_csv,
    }
    found = {p: file.find(folder, named[p], name) for p, file in files.items()}
    root = folder / images
    restore = f"name PadChest's own label file ({PADCHEST_LABELS}, or .csv.gz) with --dataset "
    restore += f"{name}:patients_csv=PATH"
    data = read_labelled_csv(
        found["train_csv"],
        root,
        CXR_LT_2026_CLASSES,
        name=name,
        meta_columns=CXR_LT_2026_META_COLUMNS,
        ignore_columns=ignore_columns,
        patients_csv=found["patients_csv"],
        patient_fix=f"To restore exact groups, {restore}.",
        split_by=split_by,
        views=PADCHEST_VIEWS,
        study_fix="" if found["patients_csv"] else f"To give every image its study, {restore}.",
    )
    patient_file = found["patients_csv"]
    known = read_patient_file(patient_file, PADCHEST_VIEWS.columns) if patient_file else None
    data = _keep_test_images_out(
        data, found["removal_csv"], found["test_csv"], root, PADCHEST_VIEWS, known
    )
    return replace(data, zero_shot_classes=CXR_LT_2026_TASK2_CLASSES)


def _mimic(
    name: str,
    path: str | None,
    train_csv: str,
    images: str,
    classes: Sequence[str],
    ignore_columns: Sequence[str],
    split_by: SplitBy,
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
        split_by=split_by,
        views=MIMIC_VIEWS,
    )


def cxr_lt_2024(
    *,
    path: str | None = None,
    train_csv: str = "train_labeled.csv",
    images: str = ".",
    subset: Literal["all", "gold"] = "all",
    ignore_columns: Sequence[str] = (),
    split_by: SplitBy = "patient",
) -> LabelledImages:
    """CXR-LT 2024 (MIMIC-CXR-JPG): 40 labels, or the 26-class gold-standard subset."""
    classes = CXR_LT_2024_CLASSES if subset == "all" else CXR_LT_2024_GOLD_CLASSES
    others = [c for c in CXR_LT_2024_CLASSES if c not in classes]
    ignored = [*ignore_columns, *others]
    return _mimic("cxr-lt-2024", path, train_csv, images, classes, ignored, split_by)


def cxr_lt_2023(
    *,
    path: str | None = None,
    train_csv: str = "train.csv",
    images: str = ".",
    ignore_columns: Sequence[str] = (),
    split_by: SplitBy = "patient",
) -> LabelledImages:
    """CXR-LT 2023 (MIMIC-CXR-JPG, 26 labels)."""
    classes = CXR_LT_2023_CLASSES
    return _mimic("cxr-lt-2023", path, train_csv, images, classes, ignore_columns, split_by)


def labelled_csv(
    *,
    path: str | None = None,
    csv: str = "labels.csv",
    images: str = ".",
    image_column: str = "path",
    labels: Sequence[str] | None = None,
    patient_column: str | None = None,
    study_column: str | None = None,
    date_column: str | None = None,
    projection_column: str | None = None,
    ignore_columns: Sequence[str] = (),
    split_by: SplitBy = "patient",
) -> LabelledImages:
    """Any labelled chest X-ray set: a CSV with an image path column and one 0/1 column per label.

    ``labels`` defaults to every column other than the image, patient, study and ignored ones.
    Without ``patient_column`` each image is its own patient (noted). ``study_column`` (or
    ``date_column``, a study being one patient's images of one day) and ``projection_column``
    say which images are views of one study, for ``--post study-views``.
    """
    folder = data_folder(path, "csv", f"{csv} and the images it names")
    if date_column and not patient_column:
        raise CxrltError(
            f"--dataset csv:date_column={date_column} makes a study of one patient's images of "
            "one day, so it needs patient_column=NAME too (or name a study_column instead)."
        )
    views = ViewColumns(study_column, date_column, projection_column, required=True)
    named = [c for c in (image_column, patient_column, *views.columns) if c]
    if labels is None:
        header = read_csv(folder / csv, text_columns=named, required=named).frame.columns
        labels = [c for c in header if c not in {*named, *ignore_columns}]
    return read_labelled_csv(
        folder / csv,
        folder / images,
        labels,
        name="csv",
        id_column=image_column,
        patient_column=patient_column,
        meta_columns=named,
        ignore_columns=ignore_columns,
        split_by=split_by,
        views=views if views.columns else None,
    )
