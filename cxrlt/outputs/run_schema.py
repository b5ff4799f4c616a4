"""The schema of a run directory: the typed contents of ``config.json`` and the columns of
``valid_predictions.csv``, declared once for every module that writes or reads a run.

``config.json`` carries ``schema_version``. Runs written before the field existed are read as
version 1 (the same layout); a version this cxrlt does not know is refused, naming it, rather
than misread. Every section is optional when read, since an interrupted run, an ensemble and
an evaluation each write only some; a consumer asks for what it needs with
:meth:`RunConfig.required`, which names the file when a section is missing.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt.data.problems import SHOWN
from cxrlt.data.table import read_csv
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import Report
from cxrlt.options import RunOptions, checked_options

SCHEMA_VERSION = 1  # the layout this cxrlt writes and reads
TRAINING, TRAINED, COMPLETE = "training", "trained", "complete"  # a run's status, in order

# valid_predictions.csv: ImageID, then one column per class of each kind, ``<kind>:<class>``
IMAGE_ID = "ImageID"
TARGET, LOGIT, PROB, CALIBRATED, PREDICTED = "target", "logit", "prob", "calibrated", "predicted"
OPTIONAL_KINDS = (CALIBRATED, PREDICTED)  # written only by runs that have them


@dataclass(frozen=True)
class SpecRecord:
    """A registry choice as the run resolved it (:meth:`cxrlt.registry.Resolved.to_dict`)."""

    name: str
    spec: str | None = None
    params: dict[str, Any] | None = None
    plugin: str | None = None
    version: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class DataRecord:
    """The classes the run predicts, their training positives and the split's sizes."""

    classes: tuple[str, ...]
    train_counts: tuple[int, ...]
    n_train: int | None = None
    n_valid: int | None = None
    provenance: dict[str, Any] | None = None


@dataclass(frozen=True)
class EnvironmentRecord:
    python: str | None = None
    torch: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class TrainingRecord:
    """The epochs trained and the best by each validation score; ``from_run`` for a run
    that post-trained another's model."""

    epochs_done: int | None = None
    best_epoch: int | None = None
    best_valid_mAP: float | None = None
    best_by_score: dict[str, Any] | None = None
    kept_epoch: int | None = None
    from_run: str | None = None


@dataclass(frozen=True)
class SelectionRecord:
    """How the reported models were chosen: per role its start and weights file."""

    protocol: str
    starts: dict[str, Any] | None = None
    weights: dict[str, str] | None = None
    post_choices: dict[str, Any] | None = None
    description: str | None = None


@dataclass(frozen=True)
class DistributedRecord:
    """Every rank's weights checksum, to show the replicas agree."""

    world_size: int
    weights_checksums: tuple[float, ...]


@dataclass(frozen=True)
class EnsembleRecord:
    """The member runs (absolute paths) and how their probabilities merge."""

    members: tuple[str, ...]
    merge: str
    weights: tuple[float, ...]


@dataclass(frozen=True)
class EvaluationRecord:
    """A run scored on another labelled data set (``cxrlt evaluate``)."""

    run: str
    dataset: str
    data: str | None = None
    images: int | None = None
    scored: str | None = None
    skipped_rows: int | None = None
    left_out_seen_by_run: int | None = None
    run_only: tuple[str, ...] = ()
    data_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """What ``config.json`` holds: how a run (ensemble, evaluation) was made and how far it got.

    ``options`` are the run's options, checked against :class:`~cxrlt.options.RunOptions` when
    read (an option the run lacks, from an older cxrlt, takes its default; one this cxrlt does
    not know is refused).
    """

    schema_version: int = SCHEMA_VERSION
    cxrlt_version: str | None = None
    created: str | None = None
    status: str | None = None
    options: RunOptions | None = None
    specs: dict[str, SpecRecord] | None = None
    post: tuple[SpecRecord, ...] = ()
    data: DataRecord | None = None
    environment: EnvironmentRecord | None = None
    training: TrainingRecord | None = None
    selection: SelectionRecord | None = None
    distributed: DistributedRecord | None = None
    ensemble: EnsembleRecord | None = None
    evaluation: EvaluationRecord | None = None
    # The input pre-processing the backbone was trained with (cxrlt.model.preprocessing),
    # pinned so that prediction rebuilds it whatever timm or the hub say later.
    preprocessing: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, raw: Any, file: Path | str) -> RunConfig:
        """The config read from ``file``'s contents; anything else is a CxrltError naming the
        file, the key and, for another schema version, both versions."""
        if isinstance(raw, Mapping):
            _check_version(raw.get("schema_version", 1), raw.get("cxrlt_version"), file)
        try:
            return _record(cls, raw, "config")
        except _Invalid as invalid:
            why = str(invalid).rstrip(".")
            raise CxrltError(
                f"{file} was not written by `cxrlt run`, `ensemble` or `evaluate` of this "
                f"version (run directory schema version {SCHEMA_VERSION}): {why}. Restore the "
                "run's own config.json, or give the folder of a cxrlt run."
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready config, sections left out when absent."""
        return _plain(self)

    def replace(self, **changes: Any) -> RunConfig:
        """This config with some sections changed, as a run's later stages record them."""
        return dataclasses.replace(self, **changes)

    def required(self, section: str, file: Path | str) -> Any:
        """A section the caller cannot do without; its absence names the file."""
        value = getattr(self, section)
        if value is None:
            raise CxrltError(
                f"{file} has no {section!r} section: it is not a complete run's config. Give "
                "the folder of a complete run, or restore its config.json."
            )
        return value

    @property
    def spec_strings(self) -> dict[str, str]:
        """Each role's spec as it resolves again (``name:key=value``)."""
        return {role: record.spec or record.name for role, record in (self.specs or {}).items()}


def _check_version(found: Any, written_by: Any, file: Path | str) -> None:
    if found == SCHEMA_VERSION and type(found) is int:
        return
    by = f" (written by cxrlt {written_by})" if written_by else ""
    raise CxrltError(
        f"{file} is a run directory of schema version {found!r}{by}; this cxrlt reads "
        f"version {SCHEMA_VERSION}. Read it with the cxrlt version that wrote it (pip install "
        "cxrlt==VERSION), or make the run again with this one."
    )


class _Invalid(Exception):
    """A value that does not fit the schema, with where it is."""


def _record(cls: type, raw: Any, where: str) -> Any:
    """A record dataclass built from a JSON object, each field converted by its type."""
    if not isinstance(raw, Mapping):
        raise _Invalid(f"{where} is not an object")
    hints = _hints(cls)
    unknown = [key for key in raw if key not in hints]
    if unknown:
        raise _Invalid(f"{where} has the unknown key {unknown[0]!r}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in raw
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise _Invalid(f"{where} lacks {missing[0]!r}")
    values = {key: _value(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    record = cls(**values)
    if isinstance(record, DataRecord) and len(record.classes) != len(record.train_counts):
        raise _Invalid(
            f"{where} has {len(record.classes)} classes but {len(record.train_counts)} train_counts"
        )
    return record


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _value(hint: Any, raw: Any, where: str) -> Any:
    """``raw`` as the type ``hint`` says (numbers made plain Python numbers)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return raw
    if hint is RunOptions:
        return _options(raw, where)
    if origin in (typing.Union, types.UnionType):
        if raw is None:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _value(inner, raw, where)
    if dataclasses.is_dataclass(hint):
        return _record(hint, _fields_of(raw) if isinstance(raw, hint) else raw, where)
    if origin is tuple:
        if not isinstance(raw, list | tuple | np.ndarray):
            raise _Invalid(f"{where} is not a list")
        return tuple(_value(args[0], item, f"{where}[{i}]") for i, item in enumerate(raw))
    if origin is dict:
        if not isinstance(raw, Mapping):
            raise _Invalid(f"{where} is not an object")
        return {str(key): _value(args[1], item, f"{where}.{key}") for key, item in raw.items()}
    if hint is int and isinstance(raw, numbers.Integral) and not isinstance(raw, bool):
        return int(raw)
    if hint is float and isinstance(raw, numbers.Real) and not isinstance(raw, bool):
        return float(raw)
    if hint is str and isinstance(raw, str):
        return raw
    raise _Invalid(f"{where} is {raw!r}, not of type {hint.__name__}")


def _fields_of(record: Any) -> dict[str, Any]:
    """A record's fields by name, to check them as if read."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


# What runs made before an option existed did, where that is not the option's default now.
_BEFORE_THE_OPTION = {"select": "best"}  # the epoch best on every validation image


def _options(raw: Any, where: str) -> RunOptions:
    """The run's options, each checked by name and type as a ``--config`` file's are; one an
    older run lacks is what that run did (its default then)."""
    if isinstance(raw, RunOptions):
        raw = options_dict(raw)
    if not isinstance(raw, Mapping):
        raise _Invalid(f"{where} is not an object")
    try:
        return RunOptions(**checked_options({**_BEFORE_THE_OPTION, **raw}, where))
    except CxrltError as error:
        raise _Invalid(str(error).rstrip(".")) from None


def options_dict(options: RunOptions) -> dict[str, Any]:
    """The options as JSON values, every one kept (paths as text), so the file replays the run."""
    return {
        f.name: str(value) if isinstance(value := getattr(options, f.name), Path) else value
        for f in dataclasses.fields(options)
    }


def _plain(value: Any) -> Any:
    """A record as JSON values: objects for records and dicts, lists for tuples, None left out
    (but in the options, which keep every value)."""
    if isinstance(value, RunOptions):
        return options_dict(value)
    if dataclasses.is_dataclass(value):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return {name: _plain(item) for name, item in fields if item is not None}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def config_from(config: RunConfig | Mapping[str, Any], file: Path | str) -> RunConfig:
    """A config to write, checked against the schema (a dict, or records, may hold numpy
    numbers or values of the wrong type)."""
    return RunConfig.from_dict(
        _fields_of(config) if isinstance(config, RunConfig) else config, file
    )


# ---- valid_predictions.csv -------------------------------------------------------------------


def class_columns(kind: str, classes: Sequence[str]) -> list[str]:
    """The columns of one kind of value, one per class: ``<kind>:<class>``."""
    return [f"{kind}:{name}" for name in classes]


@dataclass(frozen=True)
class Predictions:
    """One row per validation (or scored) image: its labels, logits, the loss's probabilities
    and, when the run has them, calibrated probabilities and 0/1 predictions."""

    image_ids: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    calibrated: np.ndarray | None = None
    predicted: np.ndarray | None = None

    def blocks(self) -> dict[str, np.ndarray]:
        """The values of each kind present, in the file's order."""
        values = {
            TARGET: self.targets.astype(np.int8),
            LOGIT: self.logits,
            PROB: self.probs,
            CALIBRATED: self.calibrated,
            PREDICTED: None if self.predicted is None else self.predicted.astype(np.int8),
        }
        return {kind: block for kind, block in values.items() if block is not None}

    def frame(self, classes: Sequence[str]) -> pd.DataFrame:
        """The file's table.

        Floats keep their shortest round-trip form (pandas' default, no ``float_format``):
        read back (pandas 3's default parser is exact), the float64 probabilities are the
        arrays' bit for bit and rank as they did."""
        parts = [pd.DataFrame({IMAGE_ID: list(self.image_ids)})] + [
            pd.DataFrame(block, columns=class_columns(kind, classes))
            for kind, block in self.blocks().items()
        ]
        return pd.concat(parts, axis=1)


def read_predictions(file: Path, classes: Sequence[str]) -> Predictions:
    """A run's ``valid_predictions.csv`` for its ``classes``; a file cut off or edited (rows
    or columns missing, values blank, text or infinite) stops, naming its first bad lines."""
    frame = _finite_rows(file)
    present = {kind for kind in OPTIONAL_KINDS if frame.columns.str.startswith(f"{kind}:").any()}

    def block(kind: str) -> np.ndarray | None:
        if kind in OPTIONAL_KINDS and kind not in present:
            return None
        names = class_columns(kind, classes)
        missing = [name for name in names if name not in frame.columns]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise CxrltError(f"{file} lacks the columns {', '.join(missing[:3])}{more}.")
        return frame[names].to_numpy()

    return Predictions(
        image_ids=frame[IMAGE_ID].to_numpy(str),
        targets=block(TARGET),
        logits=block(LOGIT),
        probs=block(PROB),
        calibrated=block(CALIBRATED),
        predicted=block(PREDICTED),
    )


def _damaged(file: Path) -> str:
    """What to do about a run's predictions file that was cut off or edited."""
    return (
        "was it cut off or edited? Restore it from a copy of the run, or write the run's "
        f"predictions again with `cxrlt run --from-run {file.parent} --out NEW_FOLDER`"
    )


def _finite_rows(file: Path) -> pd.DataFrame:
    """The rows of a predictions file, every score a finite number."""
    read = read_csv(file, text_columns=[IMAGE_ID], required=[IMAGE_ID], ragged_fix=_damaged(file))
    frame = read.frame
    scores = [c for c in frame.columns if c != IMAGE_ID]
    values = frame[scores].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    rows = np.flatnonzero(bad.any(axis=1))
    if len(rows):
        row = rows[0]
        column = scores[np.flatnonzero(bad[row])[0]]
        lines = ", ".join(str(line) for line in read.lines[rows[:SHOWN]])
        more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
        raise CxrltError(
            f"{file}: {len(rows)} {'row holds' if len(rows) == 1 else 'rows hold'} values that "
            "are missing, not numbers or infinite "
            f"(lines {lines}{more}; first: {column}={frame[column].iloc[row]!r} on line "
            f"{read.lines[row]}): {_damaged(file)}."
        )
    # numbers the parser kept as text (spaces around them, say); numeric columns keep their type
    return frame.astype({c: float for c in scores if not pd.api.types.is_numeric_dtype(frame[c])})


# ---- split.csv ---------------------------------------------------------------------------------

# A run's split.csv: ImageID, PatientID, split (train/valid) and half (empty for training
# images); an evaluation's has no half.
SPLIT_KEYS = ("ImageID", "PatientID")  # what every split.csv holds


def read_split(file: Path, fix: str) -> pd.DataFrame | None:
    """A run's split.csv as text (empty halves stay ""), or None when it has none; a file
    without ImageID and PatientID is refused with ``fix``."""
    if not file.is_file():
        return None
    split = pd.read_csv(file, dtype=str, keep_default_na=False)
    if not set(SPLIT_KEYS) <= set(split.columns):
        raise CxrltError(f"{file} lacks the columns {' and '.join(SPLIT_KEYS)}: {fix}.")
    return split


# ---- the other tables and records ------------------------------------------------------------

# metrics_per_class.csv: one row per class (the index, ``class``), these columns, and with
# intervals ``<metric>_low`` and ``<metric>_high``.
PER_CLASS_INDEX = "class"
PER_CLASS_COLUMNS = ("n_pos", "prevalence", "threshold", "AP", "AUC", "F1", "ECE")
# skipped.csv: one line per row --skip-bad left out and problem it has.
SKIPPED_COLUMNS = ("ImageID", "line", "problem")
# classes.csv (an evaluation's): how each class of either side was matched.
CLASSES_COLUMNS = ("run_class", "dataset_class", "match", "note")
# log.csv: fastai's recorder names, ``epoch`` first, one line per epoch trained.
LOG_COLUMNS = ("epoch",)
# calibration.json: what prediction reloads; ``calibrator`` and ``thresholds`` are each null
# or a registered ``spec`` with its fitted ``state``.
CALIBRATION_KEYS = ("fitted_on", "calibrator", "thresholds")
FITTED_KEYS = ("spec", "state")
# metrics.json: the overall means (the keys of :attr:`Report.overall`), ``excluded``, and
# when present ``<name>_ci``, ``intervals``, ``groups`` and ``selection``.
SELECTION_KEY = "selection"


def metrics_summary(report: Report) -> dict[str, Any]:
    """The overall means as metrics.json holds them: ``<name>_ci`` beside each mean that has
    an interval, how the intervals were made, the classes left out and the groups' rule."""
    summary: dict[str, Any] = {**report.overall, "excluded": report.excluded}
    if report.intervals is not None:
        summary |= {f"{key}_ci": list(ci) for key, ci in report.intervals.overall.items()}
        summary["intervals"] = report.intervals.record()
    if report.groups is not None:
        summary["groups"] = report.groups.description
    return summary


def per_class_table(report: Report) -> pd.DataFrame:
    """The per-class table as metrics_per_class.csv holds it (with ``<metric>_low``,
    ``_high`` when the report has intervals)."""
    if report.intervals is None:
        return report.per_class
    return report.per_class.join(report.intervals.per_class)


_NOT_AS_WRITTEN = (
    "it is not as cxrlt wrote it. Restore the file, or run again the command that wrote it"
)


def checked_columns(frame: pd.DataFrame, columns: Sequence[str], file: Path) -> pd.DataFrame:
    """``frame`` (the table of ``file``) if it has the declared ``columns``; else a CxrltError
    naming the file and the columns it lacks."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise CxrltError(
            f"{file} lacks the column{'s' * (len(missing) > 1)} {', '.join(missing)}: "
            f"{_NOT_AS_WRITTEN}."
        )
    return frame


def read_table(file: Path, columns: Sequence[str], **read: Any) -> pd.DataFrame:
    """A table of a run directory with its declared ``columns`` (``read``: pandas' options)."""
    try:
        frame = pd.read_csv(file, **read)
    except FileNotFoundError:
        raise CxrltError(f"{file} is missing: the run folder is incomplete.") from None
    except (ValueError, UnicodeDecodeError) as error:  # pandas' parser and empty-data errors
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CxrltError(
            f"{file} cannot be read as CSV ({first[:200]}): {_NOT_AS_WRITTEN}."
        ) from None
    return checked_columns(frame, columns, file)


def read_per_class(file: Path) -> pd.DataFrame:
    """metrics_per_class.csv, indexed by class."""
    frame = read_table(file, (PER_CLASS_INDEX, *PER_CLASS_COLUMNS), dtype={PER_CLASS_INDEX: str})
    return frame.set_index(PER_CLASS_INDEX)


def read_skipped(file: Path) -> pd.DataFrame:
    return read_table(file, SKIPPED_COLUMNS, dtype={"ImageID": str, "problem": str})


def read_classes(file: Path) -> pd.DataFrame:
    return read_table(file, CLASSES_COLUMNS, dtype=str, keep_default_na=False)


def read_log(file: Path) -> pd.DataFrame:
    return read_table(file, LOG_COLUMNS)


def read_submission(file: Path) -> pd.DataFrame:
    """A submission.csv: an id column (text), then one column of probabilities per class in
    the order of the data set's format (:class:`~cxrlt.registry.SubmissionFormat`)."""
    frame = read_table(file, (), dtype={0: str})
    values = frame.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if frame.shape[1] < 2 or not np.isfinite(values).all():
        raise CxrltError(
            f"{file} is not an id column followed by probabilities: {_NOT_AS_WRITTEN}."
        )
    return frame


def checked_metrics(raw: Any, file: Path) -> dict[str, Any]:
    """metrics.json's contents: a JSON object, its ``selection`` (when present) one too."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get(SELECTION_KEY, {}), Mapping):
        raise CxrltError(f"{file} does not hold the metrics of a run: {_NOT_AS_WRITTEN}.")
    return dict(raw)


def checked_calibration(raw: Any, file: Path) -> dict[str, Any]:
    """calibration.json's contents: only the declared keys, each fitted part null or a spec
    with its state."""
    fitted = [raw.get(key) for key in CALIBRATION_KEYS[1:]] if isinstance(raw, Mapping) else []
    if (
        not isinstance(raw, Mapping)
        or any(key not in CALIBRATION_KEYS for key in raw)
        or any(
            part is not None and not (isinstance(part, Mapping) and set(FITTED_KEYS) <= set(part))
            for part in fitted
        )
    ):
        raise CxrltError(
            f"{file} does not hold a run's calibrator and thresholds ({', '.join(CALIBRATION_KEYS)}"
            f"; each null or its {' and '.join(FITTED_KEYS)}): {_NOT_AS_WRITTEN}."
        )
    return dict(raw)
