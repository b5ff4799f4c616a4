"""A labelled image set as a table: one row per image, its file, patient and 0/1 labels.

Reading checks the table against the data set's label list before any image is touched,
and every problem names the file, column or row and what would fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError

ID_COLUMN = "ImageID"
PATIENT_COLUMN = "PatientID"
PATH_COLUMN = "path"
_SHOW = 5  # rows quoted in a message


@dataclass(frozen=True)
class LabelledImages:
    """Images with multi-label targets; ``frame`` has ImageID, PatientID, path and the classes."""

    name: str
    classes: tuple[str, ...]
    frame: pd.DataFrame

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


def _quote_rows(frame: pd.DataFrame, mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)[:_SHOW]
    # +2: one for the header line, one because people count CSV lines from 1.
    return ", ".join(f"line {i + 2} ({frame[ID_COLUMN].iloc[i]})" for i in rows)


def _check_columns(
    csv_path: Path, columns: Sequence[str], classes: Sequence[str], meta: Sequence[str]
) -> None:
    missing = [c for c in classes if c not in columns]
    extra = [c for c in columns if c not in classes and c not in meta]
    if not missing and not extra:
        return
    parts = []
    for column in missing:
        close = difflib.get_close_matches(column, extra, n=1)
        parts.append(
            f"{column!r} is missing" + (f" (misspelled as {close[0]!r}?)" if close else "")
        )
    parts += [
        f"{c!r} is not a label of this data set" for c in extra if not any(c in p for p in parts)
    ]
    raise CxrltError(
        f"{csv_path}: the label columns do not match the data set's {len(classes)} classes: "
        f"{'; '.join(parts)}. Rename the columns to the official spelling."
    )


def read_labelled_csv(
    csv_path: Path,
    image_dir: Path,
    classes: Sequence[str],
    *,
    name: str,
    meta_columns: Sequence[str] = (ID_COLUMN, "StudyDate_DICOM", PATIENT_COLUMN),
) -> LabelledImages:
    """Read a CXR-LT style CSV (ImageID, metadata, one 0/1 column per class) and find its images."""
    if not csv_path.is_file():
        raise CxrltError(f"Label file {csv_path} does not exist: check --data.")
    try:
        frame = pd.read_csv(csv_path, dtype={c: str for c in meta_columns}, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise CxrltError(f"{csv_path} is empty: it needs a header and one row per image.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CxrltError(f"{csv_path} is not a readable CSV file: {error}.") from None
    if ID_COLUMN not in frame.columns:
        raise CxrltError(
            f"{csv_path} has no {ID_COLUMN!r} column; its columns are {list(frame.columns)[:8]}..."
        )
    if frame.empty:
        raise CxrltError(f"{csv_path} has a header but no rows.")
    _check_columns(csv_path, list(frame.columns), classes, meta_columns)

    values = frame[list(classes)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isin(values, (0, 1)).all(axis=1)
    if bad.any():
        raise CxrltError(
            f"{csv_path}: {bad.sum()} rows have label values other than 0 and 1 (blank, -1 "
            f"for uncertain, text): {_quote_rows(frame, bad)}. Map them to 0 or 1 first."
        )
    duplicated = frame[ID_COLUMN].duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise CxrltError(
            f"{csv_path}: duplicated {ID_COLUMN}s at {_quote_rows(frame, duplicated)}: "
            "keep one row per image."
        )

    root = image_dir.resolve()
    paths = [(root / image_id).resolve() for image_id in frame[ID_COLUMN]]
    outside = np.array([not p.is_relative_to(root) for p in paths])
    if outside.any():
        raise CxrltError(
            f"{csv_path}: {_quote_rows(frame, outside)} point outside the image "
            f"folder {root}: image names must be relative paths inside it."
        )
    missing = np.array([not p.is_file() for p in paths])
    if missing.any():
        raise CxrltError(
            f"{csv_path}: {missing.sum()} image files are missing from {root}: "
            f"{_quote_rows(frame, missing)}."
        )

    if PATIENT_COLUMN not in frame.columns:
        frame[PATIENT_COLUMN] = frame[ID_COLUMN]  # no patient known: each image its own group
    frame[list(classes)] = values.astype(np.uint8)
    frame[PATH_COLUMN] = [str(p) for p in paths]
    return LabelledImages(name, tuple(classes), frame)
