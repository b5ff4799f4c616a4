"""Challenge submission files: one row per test image, the official columns, checked before writing.

The organisers score by column name and image id, and a malformed file costs a submission slot,
so every problem is found and reported together before anything reaches the disk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError
from cxrlt.io import write_with
from cxrlt.registry import Entry, SubmissionFormat, registry

# Eight significant digits keep near-saturated probabilities (0.99999991 vs 0.99999994) apart,
# so the ranking that mAP and AUROC score survives the text file.
FLOAT_FORMAT = "%.8g"
_EXAMPLES = 3


def submission_for_dataset(dataset: Entry | str, classes: Sequence[str]) -> SubmissionFormat:
    """The format, among those the data set's entry declares, whose classes the model predicts
    (the 2024 data set trains 40 classes or the 26 of the gold task, and each has its own
    file). ``dataset`` is the data set's entry, or a registered name or alias."""
    entry = dataset if isinstance(dataset, Entry) else registry("datasets").get(dataset)
    for fmt in entry.submissions:
        if set(fmt.classes) == set(classes):
            return fmt
    known = (
        ", ".join(f"{fmt.name} ({len(fmt.classes)} classes)" for fmt in entry.submissions)
        or "none declared"
    )
    raise CxrltError(
        f"No submission format of data set {entry.name!r} has the model's {len(classes)} "
        f"classes (formats: {known}): the test images were not written as a submission."
    )


def _examples(items: Sequence[object]) -> str:
    shown = ", ".join(repr(item) for item in items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


def _near_miss(wanted: str, offered: Iterable[str]) -> str:
    """A model class that differs only in case or spaces: the usual cause of a 'missing' class."""
    key = wanted.strip().casefold()
    matches = [name for name in offered if name.strip().casefold() == key]
    return f" (the model has {matches[0]!r})" if matches else ""


def build_submission(
    fmt: SubmissionFormat,
    image_ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
) -> pd.DataFrame:
    """The submission table: the model's probability columns picked by name into official order.

    Matching is by exact name, so a model trained with another class order still lands in the
    right columns. Model classes the format does not score are dropped (e.g. a 30-class model
    submitted to a 26-class subset); a format class the model lacks is an error.
    """
    probs = np.asarray(probs)
    classes = list(classes)
    if probs.ndim != 2 or probs.shape != (len(image_ids), len(classes)):
        raise CxrltError(
            f"Predictions have shape {probs.shape}; expected ({len(image_ids)} images, "
            f"{len(classes)} classes)."
        )
    repeated = [name for name, n in Counter(classes).items() if n > 1]
    if repeated:
        raise CxrltError(f"The model's class names repeat: {_examples(repeated)}.")
    missing = [name for name in fmt.classes if name not in classes]
    if missing:
        named = "; ".join(f"{name!r}{_near_miss(name, classes)}" for name in missing)
        raise CxrltError(
            f"The {fmt.name} submission needs {len(missing)} class(es) the model does not "
            f"predict: {named}."
        )
    column = {name: i for i, name in enumerate(classes)}
    table = {fmt.id_column: [str(image_id) for image_id in image_ids]}
    table |= {name: probs[:, column[name]].astype(np.float64) for name in fmt.classes}
    return pd.DataFrame(table)


def _column_problems(frame: pd.DataFrame, fmt: SubmissionFormat) -> list[str]:
    columns = [str(c) for c in frame.columns]
    if columns == list(fmt.columns):
        return []
    problems = []
    repeated = [name for name, n in Counter(columns).items() if n > 1]
    missing = [name for name in fmt.columns if name not in columns]
    extra = [name for name in columns if name not in fmt.columns]
    if repeated:
        problems.append(f"{len(repeated)} repeated column(s): {_examples(repeated)}.")
    if missing:
        problems.append(f"{len(missing)} missing column(s): {_examples(missing)}.")
    if extra:
        problems.append(f"{len(extra)} unexpected column(s): {_examples(extra)}.")
    if not problems:
        first = next(i for i, (a, b) in enumerate(zip(columns, fmt.columns, strict=True)) if a != b)
        problems.append(
            f"Columns are out of order: position {first} holds {columns[first]!r}, "
            f"expected {fmt.columns[first]!r} ({fmt.id_column!r} then the official class order)."
        )
    return problems


def _id_column(frame: pd.DataFrame, fmt: SubmissionFormat) -> pd.Series | None:
    """The id column, or None when it is absent or repeated (a column problem, reported apart)."""
    ids = frame[fmt.id_column] if fmt.id_column in frame.columns else None
    return ids if isinstance(ids, pd.Series) else None


def _id_problems(ids: pd.Series, fmt: SubmissionFormat, expected_ids: Iterable[str]) -> list[str]:
    problems = []
    blank = int(ids.isna().sum())
    if blank:
        problems.append(f"{blank} row(s) have no {fmt.id_column}.")
    given = [str(image_id) for image_id in ids.dropna()]
    expected = [str(image_id) for image_id in expected_ids]
    present, wanted = set(given), set(expected)
    repeated = [image_id for image_id, n in Counter(given).items() if n > 1]
    missing = [image_id for image_id in dict.fromkeys(expected) if image_id not in present]
    extra = [image_id for image_id in dict.fromkeys(given) if image_id not in wanted]
    if repeated:
        problems.append(
            f"{len(repeated)} duplicated {fmt.id_column}(s), e.g. {_examples(repeated)}."
        )
    if missing:
        problems.append(
            f"{len(missing)} of {len(wanted)} expected {fmt.id_column}(s) missing, "
            f"e.g. {_examples(missing)}."
        )
    if extra:
        problems.append(f"{len(extra)} unexpected {fmt.id_column}(s), e.g. {_examples(extra)}.")
    return problems


def _value_problems(frame: pd.DataFrame, fmt: SubmissionFormat) -> list[str]:
    """Non-numeric, NaN, infinite and out-of-[0, 1] cells, each kind counted over all classes."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    ids = _id_column(frame, fmt)
    ids = pd.Series(frame.index) if ids is None else ids
    for name in [c for c in dict.fromkeys(frame.columns) if c in fmt.classes]:
        raw = frame[name]
        if isinstance(raw, pd.DataFrame):  # a repeated column, already reported
            continue
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        blank = raw.isna().to_numpy()
        kinds = {
            "non-numeric": np.isnan(values) & ~blank,
            "NaN": blank,
            "infinite": np.isinf(values),
            "outside [0, 1]": np.isfinite(values) & ((values < 0) | (values > 1)),
        }
        for kind, bad in kinds.items():
            rows = np.flatnonzero(bad)
            counts[kind] += len(rows)
            shown = examples.setdefault(kind, [])
            shown += [
                f"{ids.iloc[row]!s}/{name!r}={raw.iloc[[row]].tolist()[0]!r}"  # a Python scalar
                for row in rows[: _EXAMPLES - len(shown)]
            ]
    return [
        f"{counts[kind]} {kind} value(s), e.g. {', '.join(examples[kind])}."
        for kind in examples
        if counts[kind]
    ]


def validate_submission(
    frame: pd.DataFrame, fmt: SubmissionFormat, expected_ids: Iterable[str]
) -> list[str]:
    """Every problem that would make the scorer reject or mis-score the file (empty when fine).

    Ids are compared as strings against ``expected_ids`` (the test CSV's ids); cell examples read
    ``id/'class'=value``.
    """
    problems = _column_problems(frame, fmt)
    ids = _id_column(frame, fmt)
    if ids is not None:
        problems += _id_problems(ids, fmt, expected_ids)
    return problems + _value_problems(frame, fmt)


def write_submission(
    path: Path | str, frame: pd.DataFrame, fmt: SubmissionFormat, expected_ids: Iterable[str]
) -> Path:
    """Write the CSV atomically, or raise listing every problem and leave ``path`` untouched."""
    problems = validate_submission(frame, fmt, expected_ids)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise CxrltError(
            f"Not writing {path}: the {fmt.name} submission has {len(problems)} problem(s):\n"
            f"{listed}"
        )
    return write_with(path, lambda file: frame.to_csv(file, index=False, float_format=FLOAT_FORMAT))


def write_dataset_submission(
    path: Path | str,
    dataset: Entry | str,
    image_ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
) -> tuple[Path, SubmissionFormat]:
    """Build, validate and write the file of ``dataset``'s test task for the model's classes."""
    fmt = submission_for_dataset(dataset, classes)
    ids = list(image_ids)
    return write_submission(path, build_submission(fmt, ids, probs, classes), fmt, ids), fmt
