"""A labelled image set as a table: one row per image, its file, patient and 0/1 labels.

Reading checks the table against the data set's label list before any image is touched.
Problems with the whole table stop at once; problems with single rows are collected (see
:mod:`cxrlt.data.problems`) so that all of them can be reported, or skipped, together.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import difflib
import functools
import gzip
import io
import lzma
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt.data.problems import SHOWN, Problem, find_rows
from cxrlt.errors import CxrltError

ID_COLUMN = "ImageID"
PATIENT_COLUMN = "PatientID"
PATH_COLUMN = "path"
LINE_COLUMN = "line"  # the row's line in its CSV file (header = line 1), kept through filtering
STUDY_COLUMN = "study"  # the study an image belongs to, where the files say (optional)
PROJECTION_COLUMN = "projection"  # its projection, PA, AP or LATERAL (optional)
# What a spreadsheet makes of a long numeric ID: 1.90E+38.
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE][+-]?\d+$")
# What to do about rows with too many or too few fields, unless the reader knows better.
RAGGED_FIX = "fix or remove those lines (a value that holds the separator must be in double quotes)"


@dataclass(frozen=True)
class LabelledImages:
    """Images with multi-label targets.

    ``frame`` holds ImageID, PatientID, path, line and one 0/1 column per class, and the
    ``study`` and ``projection`` of each image where the files give them;
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

    @property
    def studies(self) -> np.ndarray | None:
        """Each image's study (None: the files name no studies)."""
        return self.frame[STUDY_COLUMN].to_numpy(str) if STUDY_COLUMN in self.frame else None

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


PROJECTIONS = ("PA", "AP", "LATERAL")
_LATERAL = {"L", "LL", "RL", "LAT", "LATERAL"}


def normalised_projection(text: str) -> str:
    """PA, AP or LATERAL for the spellings PadChest (PA, AP_horizontal, L) and MIMIC (PA, AP,
    LATERAL, LL) use; any other value upper-cased, a blank one empty."""
    text = str(text).strip().upper()
    if text in _LATERAL:
        return "LATERAL"
    return next((p for p in PROJECTIONS[:2] if text.startswith(p)), text)


@dataclass(frozen=True)
class ViewColumns:
    """Where a label file says which study each image belongs to and its projection.

    An image's study is its ``study`` column's value where the file gives one, else its
    patient and its ``date`` column's value together (one patient's images of one day), else
    unknown (blank): a PatientID that a spreadsheet turned into a number like 1.90E+38 is
    shared by many patients, so it makes no study. Each column is read only where the file
    has it, unless ``required`` (a user named them: each must be there).
    """

    study: str | None = None
    date: str | None = None
    projection: str | None = None
    required: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.study, self.date, self.projection) if c)

    def read(self, frame: pd.DataFrame, known: pd.DataFrame | None = None) -> pd.DataFrame:
        """The ``study`` and ``projection`` of each row of ``frame`` (ImageID, PatientID and
        those of the columns it has), each column only where some row has a value.
        ``known`` (indexed by ImageID, such as PadChest's own label file) gives its values
        (PatientID among them) first for the images it holds."""
        frame = frame.copy()
        for column in (PATIENT_COLUMN, *self.columns):
            if known is not None and column in known:
                listed = frame[ID_COLUMN].map(known[column])
                frame[column] = listed.where(listed.notna(), frame.get(column))
        text = {c: frame[c].fillna("").astype(str).str.strip() for c in self.columns if c in frame}
        study = pd.Series("", index=frame.index)
        if self.date in text and PATIENT_COLUMN in frame:
            patient = frame[PATIENT_COLUMN].fillna("").astype(str).str.strip()
            dated = (patient != "") & (text[self.date] != "") & ~patient.str.match(_SCIENTIFIC)
            study = study.mask(dated, patient + "/" + text[self.date])
        if self.study in text:
            study = text[self.study].where(text[self.study] != "", study)
        out = pd.DataFrame(index=frame.index)
        if (study != "").any():
            out[STUDY_COLUMN] = study
        if self.projection in text and (text[self.projection] != "").any():
            out[PROJECTION_COLUMN] = text[self.projection].map(normalised_projection)
        return out


def study_note(views: pd.DataFrame, source: Path, fix: str = "") -> str | None:
    """A note counting the images whose study is unknown while others' are known (under
    ``study-views`` they keep their own predictions); ``fix`` says how to give them one."""
    if STUDY_COLUMN not in views or (views[STUDY_COLUMN] != "").all():
        return None
    unknown = int((views[STUDY_COLUMN] == "").sum())
    return (
        f"{source.name} gives no study for {unknown} of its {len(views)} images (no study ID, "
        "or no usable PatientID and date): study-views leaves their predictions as they are."
        + (f" {fix}" if fix else "")
    )


@dataclass(frozen=True)
class CsvFile:
    """A CSV file as read: its rows, each row's line in the file (the header's is 1 unless
    blank lines come first), and notes on how it was read (encoding, separator)."""

    frame: pd.DataFrame
    lines: np.ndarray
    notes: tuple[str, ...] = ()


def read_csv(
    csv_path: Path,
    *,
    text_columns: Sequence[str] = (),
    columns: Sequence[str] | None = None,
    optional: Sequence[str] = (),
    required: Sequence[str] = (),
    ragged_fix: str = RAGGED_FIX,
) -> CsvFile:
    """A CSV with ID-like columns kept as text; a missing, empty, binary or ragged file stops
    here, naming the lines, and so does one without the ``required`` columns.

    The encoding (UTF-8, else a byte-order mark's, else Windows-1252) and the separator (comma,
    else the one the header uses) are detected and noted. ``columns`` reads only those (each
    must be there) and those of ``optional`` the file has, which saves time on wide files.
    ``ragged_fix`` is the advice for rows
    with the wrong number of fields (for a file cxrlt wrote: restore it, not edit it).
    """
    raw = _read_bytes(csv_path)
    text, encoding, notes = _decode(csv_path, raw)
    physical = text.split("\n")  # the csv module keeps a quoted field's line breaks
    separator = _separator(csv_path, physical, notes)
    header, lines = _rows(csv_path, physical, separator, ragged_fix)
    _require_columns(csv_path, header, columns or required)
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:
        raise CxrltError(
            f"{csv_path}: the header names the column {twice[0]!r} twice: rename or remove one."
        )
    frame = pd.read_csv(
        io.BytesIO(raw),
        sep=separator,
        encoding=encoding,
        dtype={c: str for c in text_columns},
        keep_default_na=False,
        usecols=None if columns is None else lambda c: c in columns or c in optional,
    )
    if frame.empty:
        raise CxrltError(
            f"{csv_path} has a header but no rows: it needs one row per image below the header."
        )
    return CsvFile(frame, lines, tuple(notes))


# Compressed CSVs are read through these (PadChest's label file ships as .csv.gz).
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Byte-order marks, longest first (a UTF-32 mark starts like a UTF-16 one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with a byte-order mark"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
# Header fields that are data, not column names: the file has no header line.
_DATA_LIKE = re.compile(r"\.(png|jpe?g|dcm|dicom|tiff?)$|^[\d.eE+-]+$", re.IGNORECASE)


def _read_bytes(csv_path: Path) -> bytes:
    if csv_path.is_dir():
        raise CxrltError(f"{csv_path} is a folder, where a CSV file is expected: name the file.")
    if not csv_path.is_file():
        raise CxrltError(f"{csv_path} does not exist: check --data and the file names.")
    try:
        with _OPENERS.get(csv_path.suffix.lower(), open)(csv_path, "rb") as file:
            return file.read()
    except (OSError, EOFError) as error:
        reason = getattr(error, "strerror", None) or error
        raise CxrltError(
            f"{csv_path} cannot be read ({reason}): make it readable and, if it is compressed, "
            "check that it is complete."
        ) from None


def _decode(csv_path: Path, raw: bytes) -> tuple[str, str, list[str]]:
    """The text of ``raw`` and its encoding, with a note when it is not plain UTF-8."""
    for mark, encoding, name in _BOMS:
        if raw.startswith(mark):
            return raw.decode(encoding), encoding, [f"{csv_path.name} is {name}: read it so."]
    if b"\x00" in raw[:4096]:
        raise CxrltError(
            f"{csv_path} is not a text CSV file: it holds zero bytes, as UTF-16 without a "
            "byte-order mark, a spreadsheet or another binary file does. Save it as a CSV file "
            "in UTF-8."
        )
    try:
        return raw.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        byte = raw[error.start]
    try:
        text, encoding, name = raw.decode("cp1252"), "cp1252", "Windows-1252"
    except UnicodeDecodeError:
        text, encoding, name = raw.decode("latin-1"), "latin-1", "Latin-1"
    return (
        text,
        encoding,
        [
            f"{csv_path.name} is not UTF-8 (byte 0x{byte:02x} on line {line}): read it as "
            f"{name}. If accented names look wrong, save the file as UTF-8."
        ],
    )


def _separator(csv_path: Path, physical: Sequence[str], notes: list[str]) -> str:
    """A comma, unless the header has none and another separator instead (noted)."""
    header = next((line for line in physical if line.strip()), "")
    counts = {separator: header.count(separator) for separator in _SEPARATORS}
    separator = max(counts, key=counts.__getitem__)
    if counts[","] or not counts[separator]:
        return ","
    notes.append(
        f"{csv_path.name} separates its columns with {_SEPARATORS[separator]}, not commas: "
        "read it so."
    )
    return separator


def _blank(row: Sequence[str]) -> bool:
    """A line that pandas skips: empty, or spaces alone."""
    return not row or (len(row) == 1 and not row[0].strip())


def _rows(
    csv_path: Path, physical: Sequence[str], separator: str, fix: str
) -> tuple[list[str], np.ndarray]:
    """The header and each row's line; stops on an empty header, and on rows with more fields
    than the header or too few to reach its last named column (the 2026 test CSV's header ends
    in unnamed columns that rows may leave out)."""
    reader = csv.reader(physical, delimiter=separator)
    header: list[str] | None = None
    lines, ragged, previous = [], [], 0
    for row in reader:
        start, previous = previous + 1, reader.line_num
        if _blank(row):
            continue
        if header is None:
            header = row
            named = max((i + 1 for i, name in enumerate(row) if name.strip()), default=0)
        elif named <= len(row) <= len(header):
            lines.append(start)
        else:
            ragged.append(f"line {start} has {len(row)}")
    if header is None or not named:
        raise CxrltError(f"{csv_path} is empty: it needs a header and one row per image.")
    if ragged:
        more = f", and {len(ragged) - SHOWN} more lines" if len(ragged) > SHOWN else ""
        raise CxrltError(
            f"{csv_path}: the header has {len(header)} fields (separated by "
            f"{_SEPARATORS[separator]}), but {', '.join(ragged[:SHOWN])}{more}. Each row needs "
            f"one value per column: {fix}."
        )
    return header, np.array(lines, dtype=np.int64)


def _require_columns(csv_path: Path, header: Sequence[str], needed: Sequence[str]) -> None:
    """Stop when a needed column is not in the header, saying so when the header is data."""
    missing = [c for c in needed if c not in header]
    if not missing:
        return
    if any(_DATA_LIKE.search(name.strip()) for name in header):
        raise CxrltError(
            f"{csv_path} has no header line: its first line ({', '.join(header[:3])}, ...) "
            f"is data. Add a header line naming the columns ({', '.join(needed)}, ...) above "
            "it."
        )
    close = {c: close_name(c, header) for c in missing}
    hint = "".join(f" (rename {m!r} to {c!r}?)" for c, m in close.items() if m)
    raise CxrltError(
        f"{csv_path} has no {' or '.join(map(repr, missing))} column{hint}; its columns start "
        f"{list(header)[:6]}. It needs the columns {', '.join(map(repr, needed))}: rename "
        "them or pick the right file."
    )


def _name_key(name: str) -> str:
    """A column name without case, spaces or punctuation: ``Image ID`` and ``image_id`` are
    ``imageid``."""
    return re.sub(r"[\W_]+", "", name).lower()


def close_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate that most likely means the column ``name``: the same name in another
    case or with other separators (``image_id`` for ``ImageID``), else the closest spelling,
    else None. Every CSV's missing columns are matched so, for one kind of hint."""
    keys = {_name_key(c): c for c in candidates if _name_key(c)}
    key = _name_key(name)
    if key in keys:
        return keys[key]
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    return keys[match[0]] if match else None


def strip_ids(ids: pd.Series, lines: Sequence[int], csv_path: Path) -> tuple[pd.Series, str]:
    """IDs without surrounding spaces (which would name no file), and a note counting the
    ones changed ("" when none was)."""
    stripped = ids.str.strip()
    changed = np.flatnonzero((stripped != ids).to_numpy())
    if not len(changed):
        return ids, ""
    first = changed[0]
    return stripped, (
        f"Removed the spaces around {len(changed)} {ids.name}s in {csv_path.name} (first on "
        f"line {lines[first]}: {ids.iloc[first]!r})."
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
        close = close_name(column, [c for c in extra if c not in misspelled])
        misspelled.update([close] if close else [])
        hint = f" (misspelled as {close!r}?)" if close else ""
        parts.append(f"{column!r} is missing{hint}")
    parts += [f"{c!r} is not a label of this data set" for c in extra if c not in misspelled]
    raise CxrltError(
        f"{csv_path}: the label columns do not match the data set's {len(classes)} classes: "
        f"{'; '.join(parts)}. Rename them to the official spelling, or list columns to ignore "
        "with the data set's ignore_columns parameter."
    )


def _spelled_label(text: str) -> float:
    """The 0/1 that a label written otherwise means (``1.0``, ``True``), else NaN."""
    word = text.strip().lower()
    if word in ("true", "false"):
        return float(word == "true")
    try:
        number = float(word)
    except ValueError:
        return np.nan
    return number if number in (0.0, 1.0) else np.nan


def _label_problems(
    frame: pd.DataFrame, classes: Sequence[str], lines: Sequence[int], csv_path: Path
) -> tuple[np.ndarray, list[Problem], str]:
    """The 0/1 labels of the label columns (read as text), the rows with other values, and a
    note counting the values written otherwise than 0 and 1 that still mean one of them
    (``1.0``, ``True``; "" when there are none)."""
    text = frame[list(classes)].to_numpy(object)
    values = np.where(text == "1", 1.0, np.where(text == "0", 0.0, np.nan))
    other = np.isnan(values)
    meaning = {word: _spelled_label(word) for word in pd.unique(text[other])}
    values[other] = [meaning[word] for word in text[other]]
    bad = np.isnan(values)
    details = tuple(
        ", ".join(f"{classes[c]!r}={str(text[row, c])!r}" for c in np.flatnonzero(bad[row]))
        for row in np.flatnonzero(bad.any(axis=1))
    )
    problems = find_rows(
        "label values other than 0 and 1 (blank, -1 for uncertain, text)",
        bad.any(axis=1),
        "Map them to 0 or 1 first.",
    )
    problems = [replace(p, details=details) for p in problems]
    return (
        np.where(bad, 0, values).astype(np.uint8),
        problems,
        _spelling_note(text, other & ~bad, lines, classes, csv_path),
    )


def _spelling_note(
    text: np.ndarray,
    spelled: np.ndarray,
    lines: Sequence[int],
    classes: Sequence[str],
    csv_path: Path,
) -> str:
    """A note counting the label values written otherwise than 0 and 1 but read as one."""
    if not spelled.any():
        return ""
    row, column = np.argwhere(spelled)[0]
    shown = ", ".join(repr(str(word)) for word in pd.unique(text[spelled])[:SHOWN])
    return (
        f"{int(spelled.sum())} label values in {csv_path.name} are written as {shown} (first "
        f"on line {lines[row]}, column {classes[column]!r}), not as 0 and 1: read as the 0 or 1 "
        "they mean."
    )


def locate_images(names: pd.Series, root: Path) -> tuple[list[str], list[Problem]]:
    """Absolute image paths under ``root``, with rows pointing outside it (by their name, or
    through a symlink) or at no file."""
    root = root.resolve()
    named = [Path(os.path.normpath(root / str(name))) for name in names]
    paths = [path.resolve() for path in named]
    inside = np.array([p.is_relative_to(root) for p in paths])
    named_inside = np.array([p.is_relative_to(root) for p in named])
    missing = np.array([i and not p.is_file() for p, i in zip(paths, inside, strict=True)])
    linked_out = ~inside & named_inside
    problems = find_rows(
        f"image path outside the image folder {root}",
        ~named_inside,
        "Image names must be relative paths inside the image folder (no '..', no absolute path).",
    ) + find_rows(
        f"image is a symlink that leaves the image folder {root}",
        linked_out,
        "Copy the files into the folder, or point --data at the folder that holds them.",
    )
    if linked_out.any():
        details = tuple(f"links to {paths[row]}" for row in np.flatnonzero(linked_out))
        problems[-1] = replace(problems[-1], details=details)
    other_case = _names_in_other_case(paths, missing)
    problems += find_rows(
        f"image file missing from {root}",
        missing & (other_case == ""),
        "Put the files there, point --data at the right folder, or remove the rows.",
    )
    problems += find_rows(
        f"image file named in another letter case in {root}",
        other_case != "",
        "Names are case-sensitive: rename the files or fix the CSV.",
    )
    if (other_case != "").any():
        details = tuple(f"the folder holds {name}" for name in other_case[other_case != ""])
        problems[-1] = replace(problems[-1], details=details)
    return [str(p) for p in paths], problems


def _names_in_other_case(paths: Sequence[Path], missing: np.ndarray) -> np.ndarray:
    """For each missing file, the name of a file beside it that differs only in letter case
    (``X.PNG`` for ``X.png``), else "". Each folder is listed once, and only for missing files."""
    listings: dict[Path, dict[str, str]] = {}
    found = np.full(len(paths), "", dtype=object)
    for row in np.flatnonzero(missing):
        path = paths[row]
        if path.parent not in listings:
            try:
                names = os.listdir(path.parent)
            except OSError:
                names = []
            listings[path.parent] = {name.lower(): name for name in names}
        found[row] = listings[path.parent].get(path.name.lower(), "")
    return found


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


def read_patient_file(csv_path: Path, optional: Sequence[str] = ()) -> pd.DataFrame:
    """PatientID, and those ``optional`` columns it has, by ImageID from a file that holds
    them, such as PadChest's own label CSV, whose IDs never went through a spreadsheet (and
    which names each image's study and projection).

    The last files read are kept (while unchanged): a data set reads one for its training
    images and again for its test images, and PadChest's has 160,000 rows."""
    stat = csv_path.stat()
    return _read_patient_file(csv_path, tuple(optional), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_patient_file(
    csv_path: Path, optional: tuple[str, ...], _mtime: int, _size: int
) -> pd.DataFrame:
    columns = [ID_COLUMN, PATIENT_COLUMN]
    others = [c for c in optional if c not in columns]
    read = read_csv(csv_path, text_columns=[*columns, *others], columns=columns, optional=others)
    frame = read.frame.drop_duplicates()
    twice = frame[ID_COLUMN].duplicated(keep=False)
    if twice.any():
        image = frame[ID_COLUMN][twice].iloc[0]
        rows = frame[frame[ID_COLUMN] == image]
        differ = [c for c in rows.columns if c != ID_COLUMN and rows[c].nunique() > 1]
        raise CxrltError(
            f"{csv_path}: the {ID_COLUMN} {image} has rows with different "
            f"{' and '.join(differ)}. Keep one row per image."
        )
    return frame.set_index(ID_COLUMN)


def _restore_patients(
    ids: pd.Series, patients: pd.Series, known: pd.DataFrame, patients_csv: Path
) -> tuple[pd.Series, int, str]:
    """The PatientIDs ``known`` (read from ``patients_csv``) where it has the image; the others
    keep theirs."""
    found = ids.map(known[PATIENT_COLUMN])
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


SPLIT_BY_IMAGE = "split_by=image"


def _patient_problems(
    csv_path: Path, patients: pd.Series, column: str, name: str, patient_fix: str
) -> list[Problem]:
    """Blank PatientIDs as a row problem; a single patient (or none) stops: no validation split
    could keep patients apart. Either way the way out is named, splitting by image among it."""
    by_image = f"split by image with --dataset {name}:{SPLIT_BY_IMAGE}"
    blank = (patients.str.strip() == "").to_numpy()
    known = patients[~blank]
    if len(patients) > 1 and known.nunique() < 2:
        what = (
            f"the {column} column is blank on every row"
            if known.empty
            else f"every row has the {column} {known.iloc[0]!r}"
            + (f" or none ({int(blank.sum())} rows)" if blank.any() else "")
        )
        restore = f" {patient_fix}" if patient_note(known, "") and patient_fix else ""
        raise CxrltError(
            f"{csv_path}: {what}, but a validation split that keeps each patient's images on "
            "one side (and the bootstrap over patients) needs two patients or more. Give each "
            f"image its patient's ID,{restore} or {by_image} (a patient's images may then "
            "fall on both sides, which flatters validation scores)."
        )
    return find_rows(
        f"blank {column}",
        blank,
        f"Fill in the {column}s, or {by_image}.",
    )


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
    split_by: str = "patient",
    views: ViewColumns | None = None,
    study_fix: str = "",
) -> LabelledImages:
    """Read a label CSV (an ID, metadata, one 0/1 column per class) and find its images.

    Images are ``image_root / <path_column>`` (the ID itself when no path column is given).
    With ``split_by="image"``, or without a patient column, each image is its own patient
    (noted). ``patients_csv`` (ImageID, PatientID) replaces the patient column's IDs for the
    images it holds; ``patient_fix`` is the advice given, without it, when the IDs look like
    spreadsheet numbers. A blank PatientID is a row problem; a single patient stops.
    ``views`` names the columns of each image's study and projection, read where the file
    (or ``patients_csv``, first) has them; ``study_fix`` is the advice given when some images'
    studies are unknown.
    """
    by_image = split_by == "image" or not patient_column
    if by_image and patients_csv is not None:
        raise CxrltError(
            f"--dataset {name}: patients_csv and {SPLIT_BY_IMAGE} contradict each other "
            "(PatientIDs are then not used): leave one of them out."
        )
    view_columns = views.columns if views else ()
    known = read_patient_file(patients_csv, view_columns) if patients_csv else None
    id_like = [
        c for c in (id_column, path_column, patient_column, *meta_columns, *view_columns) if c
    ]
    needed = [c for c in (id_column, path_column, patient_column) if c]
    needed += view_columns if views and views.required else ()
    read = read_csv(csv_path, text_columns=[*id_like, *classes], required=needed)
    frame, notes = read.frame, list(read.notes)
    _check_label_columns(
        csv_path, list(frame.columns), classes, [*meta_columns, *id_like, *ignore_columns]
    )
    for column in dict.fromkeys(c for c in (id_column, path_column) if c):
        frame[column], note = strip_ids(frame[column], read.lines, csv_path)
        notes.append(note)
    labels, problems, spelling = _label_problems(frame, classes, read.lines, csv_path)
    notes.append(spelling)
    problems += find_rows(
        f"duplicated {id_column}",
        frame[id_column].duplicated(keep=False).to_numpy(),
        "Keep one row per image.",
    )
    paths, path_problems = locate_images(frame[path_column or id_column], image_root)
    provenance = {"train": str(csv_path), "split_by": "image" if by_image else "patient"}
    if by_image:
        patients = frame[id_column]
        notes.append(
            (
                f"Each image counts as its own patient ({SPLIT_BY_IMAGE}), as asked"
                if patient_column
                else "No patient column named: each image counts as its own patient (name "
                f"the column with --dataset {name}:patient_column=NAME)"
            )
            + ". A validation split can then put one patient's images on both sides, which "
            "flatters validation scores, and intervals treat the images as independent."
        )
    else:
        patients = frame[patient_column]
        if patients_csv is not None:
            patients, missing, note = _restore_patients(
                frame[id_column], patients, known, patients_csv
            )
            notes.append(note)
            provenance.update(patients=str(patients_csv), patients_not_found=missing)
        problems += _patient_problems(
            csv_path, patients, patient_column, name, "" if patients_csv else patient_fix
        )
        notes.append(patient_note(patients, "" if patients_csv else patient_fix) or "")
    table = pd.DataFrame(
        {ID_COLUMN: frame[id_column], PATIENT_COLUMN: patients, PATH_COLUMN: paths}
    )
    table[LINE_COLUMN] = read.lines
    table[list(classes)] = labels
    if views:
        # Studies are the patients' own, even when the split ignores them.
        study_patients = frame[patient_column] if by_image and patient_column else patients
        listed = frame.assign(**{ID_COLUMN: frame[id_column], PATIENT_COLUMN: study_patients})
        table = pd.concat([table, views.read(listed, known)], axis=1)
        notes.append(study_note(table, csv_path, study_fix) or "")
    return LabelledImages(
        name,
        tuple(classes),
        table,
        source=str(csv_path),
        problems=tuple(problems + path_problems),
        notes=tuple(note for note in notes if note),
        provenance=provenance,
    )
