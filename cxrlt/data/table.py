"""A labelled image set as a table: one row per image, its file, patient and 0/1 labels.

Reading checks the table against the data set's label list before any image is touched.
Problems with the whole table stop at once; problems with single rows are collected (see
:mod:`cxrlt.data.problems`) so that all of them can be reported, or skipped, together.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt.data.problems import Problem, find_rows
from cxrlt.errors import CxrltError

ID_COLUMN = "ImageID"
PATIENT_COLUMN = "PatientID"
PATH_COLUMN = "path"
LINE_COLUMN = "line"  # the row's line in its CSV file (header = line 1), kept through filtering
# What a spreadsheet makes of a long numeric ID: 1.90E+38.
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE][+-]?\d+$")


@dataclass(frozen=True)
class LabelledImages:
    """Images with multi-label targets.

    ``frame`` holds ImageID, PatientID, path, line and one 0/1 column per class;
    ``problems`` the bad rows found while reading; ``notes`` what a user should be told (rows
    removed, coarse IDs); ``warnings`` what a user must not miss (nothing keeps the test images
    out of training); ``test`` the unlabelled test images (ImageID, path), if any;
    ``provenance`` the files read and the rows each removed, for the run's ``config.json``.
    """

    name: str
    classes: tuple[str, ...]
    frame: pd.DataFrame
    source: str = ""
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    test: pd.DataFrame | None = None
    zero_shot_classes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def labels(self) -> np.ndarray:
        return self.frame[list(self.classes)].to_numpy(np.uint8)

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self.frame[PATH_COLUMN]]

    @property
    def image_ids(self) -> list[str]:
        return self.frame[ID_COLUMN].tolist()

    @property
    def patients(self) -> np.ndarray:
        return self.frame[PATIENT_COLUMN].to_numpy(str)

    @property
    def lines(self) -> list[int]:
        return self.frame[LINE_COLUMN].tolist()

    def without(self, rows: Iterable[int]) -> LabelledImages:
        """The same set less some rows (positions); the problems of the others are kept."""
        keep = np.ones(len(self.frame), bool)
        keep[list(rows)] = False
        position = np.cumsum(keep) - 1
        problems = []
        for problem in self.problems:
            kept = [k for k, row in enumerate(problem.rows) if keep[row]]
            if kept:
                details = tuple(problem.details[k] for k in kept) if problem.details else ()
                rows_now = tuple(int(position[problem.rows[k]]) for k in kept)
                problems.append(replace(problem, rows=rows_now, details=details))
        frame = self.frame[keep].reset_index(drop=True)
        return replace(self, frame=frame, problems=tuple(problems))


def read_csv(
    csv_path: Path, *, text_columns: Sequence[str] = (), columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A CSV with ID-like columns kept as text; a missing, empty or unreadable file stops here.

    ``columns`` reads only those (each must be there), which saves time on wide files.
    """
    if not csv_path.is_file():
        raise CxrltError(f"{csv_path} does not exist: check --data and the file names.")
    try:
        frame = pd.read_csv(
            csv_path,
            dtype={c: str for c in text_columns},
            keep_default_na=False,
            usecols=None if columns is None else lambda c: c in columns,
        )
    except pd.errors.EmptyDataError:
        raise CxrltError(f"{csv_path} is empty: it needs a header and one row per image.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CxrltError(f"{csv_path} is not a readable CSV file: {error}") from None
    missing = [c for c in columns or () if c not in frame.columns]
    if missing:
        raise CxrltError(
            f"{csv_path} has no {' or '.join(map(repr, missing))} column: it needs the columns "
            f"{', '.join(map(repr, columns))}. Pick the right file or rename its columns."
        )
    if frame.empty:
        raise CxrltError(f"{csv_path} has a header but no rows.")
    return frame


def _require_columns(csv_path: Path, frame: pd.DataFrame, columns: Iterable[str]) -> None:
    for column in columns:
        if column not in frame.columns:
            raise CxrltError(
                f"{csv_path} has no {column!r} column; its columns start "
                f"{list(frame.columns)[:6]}. Rename the column or pick the right file."
            )


def _check_label_columns(
    csv_path: Path, columns: Sequence[str], classes: Sequence[str], allowed: Iterable[str]
) -> None:
    allowed = set(allowed)
    missing = [c for c in classes if c not in columns]
    extra = [c for c in columns if c not in classes and c not in allowed]
    if not missing and not extra:
        return
    parts, misspelled = [], set()
    for column in missing:
        close = difflib.get_close_matches(column, extra, n=1, cutoff=0.6)
        misspelled.update(close)
        hint = f" (misspelled as {close[0]!r}?)" if close else ""
        parts.append(f"{column!r} is missing{hint}")
    parts += [f"{c!r} is not a label of this data set" for c in extra if c not in misspelled]
    raise CxrltError(
        f"{csv_path}: the label columns do not match the data set's {len(classes)} classes: "
        f"{'; '.join(parts)}. Rename them to the official spelling, or list columns to ignore "
        "with the data set's ignore_columns parameter."
    )


def _label_problems(
    frame: pd.DataFrame, classes: Sequence[str]
) -> tuple[np.ndarray, list[Problem]]:
    values = frame[list(classes)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isin(values, (0, 1))
    details = tuple(
        ", ".join(
            f"{classes[c]!r}={str(frame.iloc[row][classes[c]])!r}" for c in np.flatnonzero(bad[row])
        )
        for row in np.flatnonzero(bad.any(axis=1))
    )
    problems = find_rows(
        "label values other than 0 and 1 (blank, -1 for uncertain, text)",
        bad.any(axis=1),
        "Map them to 0 or 1 first.",
    )
    problems = [replace(p, details=details) for p in problems]
    return np.where(bad, 0, values).astype(np.uint8), problems


def locate_images(names: pd.Series, root: Path) -> tuple[list[str], list[Problem]]:
    """Absolute image paths under ``root``, with rows pointing outside it or at no file."""
    root = root.resolve()
    paths = [(root / str(name)).resolve() for name in names]
    outside = np.array([not p.is_relative_to(root) for p in paths])
    missing = np.array([not o and not p.is_file() for p, o in zip(paths, outside, strict=True)])
    problems = find_rows(
        f"image path outside the image folder {root}",
        outside,
        "Image names must be relative paths inside the image folder.",
    ) + find_rows(
        f"image file missing from {root}",
        missing,
        "Put the files there, point --data at the right folder, or remove the rows.",
    )
    return [str(p) for p in paths], problems


def patient_note(patients: pd.Series, fix: str = "") -> str | None:
    """A warning when patient IDs went through a spreadsheet and lost their digits.

    ``fix`` says how the data set can restore them, when it can.
    """
    looks_scientific = patients.astype(str).str.match(_SCIENTIFIC)
    if not looks_scientific.any():
        return None
    return (
        f"{int(looks_scientific.sum())} PatientIDs look like spreadsheet numbers (e.g. "
        f"{patients[looks_scientific].iloc[0]}): the {len(patients)} images fall into only "
        f"{patients.nunique()} patient groups, so patient-grouped splits are coarse."
        + (f" {fix}" if fix else "")
    )


def read_patient_ids(csv_path: Path) -> pd.Series:
    """PatientID by ImageID from a file that holds both, such as PadChest's own label CSV,
    whose IDs never went through a spreadsheet."""
    columns = [ID_COLUMN, PATIENT_COLUMN]
    frame = read_csv(csv_path, text_columns=columns, columns=columns).drop_duplicates()
    twice = frame[ID_COLUMN].duplicated()
    if twice.any():
        raise CxrltError(
            f"{csv_path}: the {ID_COLUMN} {frame[ID_COLUMN][twice].iloc[0]} has two "
            f"{PATIENT_COLUMN}s. Keep one row per image."
        )
    return frame.set_index(ID_COLUMN)[PATIENT_COLUMN]


def _restore_patients(
    ids: pd.Series, patients: pd.Series, patients_csv: Path
) -> tuple[pd.Series, int, str]:
    """The PatientIDs of ``patients_csv`` where it has the image; the others keep theirs."""
    found = ids.map(read_patient_ids(patients_csv))
    missing = int(found.isna().sum())
    if missing == len(ids):
        raise CxrltError(
            f"{patients_csv} holds none of the {len(ids)} training images' ImageIDs (e.g. "
            f"{ids.iloc[0]!r}): it is not the label file of this data set. Give PadChest's "
            "own label CSV as patients_csv, or leave the option out."
        )
    note = f"PatientIDs of {len(ids) - missing} images taken from {patients_csv.name}."
    if missing:
        note += f" {missing} images are not in it and keep the PatientID of the label CSV."
    return found.where(found.notna(), patients), missing, note


def read_labelled_csv(
    csv_path: Path,
    image_root: Path,
    classes: Sequence[str],
    *,
    name: str,
    id_column: str = ID_COLUMN,
    path_column: str | None = None,
    patient_column: str | None = PATIENT_COLUMN,
    meta_columns: Sequence[str] = (ID_COLUMN, "StudyDate_DICOM", PATIENT_COLUMN),
    ignore_columns: Sequence[str] = (),
    patients_csv: Path | None = None,
    patient_fix: str = "",
) -> LabelledImages:
    """Read a label CSV (an ID, metadata, one 0/1 column per class) and find its images.

    Images are ``image_root / <path_column>`` (the ID itself when no path column is given).
    Without a patient column each image is its own patient. ``patients_csv`` (ImageID,
    PatientID) replaces the patient column's IDs for the images it holds; ``patient_fix``
    is the advice given, without it, when the IDs look like spreadsheet numbers.
    """
    id_like = [c for c in (id_column, path_column, patient_column, *meta_columns) if c]
    frame = read_csv(csv_path, text_columns=id_like)
    _require_columns(csv_path, frame, [c for c in (id_column, path_column, patient_column) if c])
    _check_label_columns(
        csv_path, list(frame.columns), classes, [*meta_columns, *id_like, *ignore_columns]
    )
    labels, problems = _label_problems(frame, classes)
    problems += find_rows(
        f"duplicated {id_column}",
        frame[id_column].duplicated(keep=False).to_numpy(),
        "Keep one row per image.",
    )
    paths, path_problems = locate_images(frame[path_column or id_column], image_root)
    patients = frame[patient_column] if patient_column else frame[id_column]
    notes, provenance = [], {"train": str(csv_path)}
    if patients_csv is not None:
        patients, missing, note = _restore_patients(frame[id_column], patients, patients_csv)
        notes.append(note)
        provenance.update(patients=str(patients_csv), patients_not_found=missing)
    table = pd.DataFrame(
        {ID_COLUMN: frame[id_column], PATIENT_COLUMN: patients, PATH_COLUMN: paths}
    )
    table[LINE_COLUMN] = np.arange(len(frame)) + 2
    table[list(classes)] = labels
    if patient_column:
        notes.append(patient_note(patients, "" if patients_csv else patient_fix))
    return LabelledImages(
        name,
        tuple(classes),
        table,
        source=str(csv_path),
        problems=tuple(problems + path_problems),
        notes=tuple(note for note in notes if note),
        provenance=provenance,
    )
