"""A run directory: everything needed to inspect, compare or repeat a run.

Its files are named here and written and read through :class:`RunDir`, in the types of
:mod:`cxrlt.outputs.run_schema`. Every file is written atomically, so an interrupted run leaves
whole files or none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import Report
from cxrlt.io import atomic_path, read_json, write_json, write_with
from cxrlt.outputs.run_schema import (
    CLASSES_COLUMNS,
    SKIPPED_COLUMNS,
    Predictions,
    RunConfig,
    checked_calibration,
    checked_columns,
    checked_metrics,
    config_from,
    metrics_summary,
    per_class_table,
    read_classes,
    read_log,
    read_per_class,
    read_predictions,
    read_skipped,
    read_split,
    read_submission,
)

CONFIG = "config.json"
LOG = "log.csv"
WEIGHTS = "model.safetensors"
LAST_WEIGHTS = "last.safetensors"
CALIBRATION = "calibration.json"
SUBMISSION = "submission.csv"
PREDICTIONS = "valid_predictions.csv"
METRICS = "metrics.json"
PER_CLASS = "metrics_per_class.csv"
SPLIT = "split.csv"  # ImageID, PatientID, side and validation half of every image
CHECKPOINT = "checkpoint.pt"  # the last epoch's full training state, while a run trains
SKIPPED = "skipped.csv"  # the rows --skip-bad left out, with why
CLASSES = "classes.csv"  # an evaluation's matching of the run's classes to the data set's


class RunDir:
    """The folder of one run and the files it holds; created by the first file written.

    With ``check`` the folder is checked at once (:func:`check_run_folder`); a run that goes
    ahead calls :meth:`start` before its first write, so an overwritten run's files go only
    when the new run is known to start.
    """

    def __init__(self, path: Path | str, *, overwrite: bool = False, check: bool = True) -> None:
        self.path = Path(path)
        self.started = False  # whether start() has cleared the folder for this run
        if check:
            check_run_folder(self.path, overwrite=overwrite)

    def start(self) -> RunDir:
        """A new run begins here: remove everything in the folder of the run it held
        (``--overwrite`` let it stay until now; the whole folder is the run's), so that no
        stale submission.csv, weights or plots sit beside the new model. Call once every check
        has passed, not when resuming."""
        self.started = True
        if holds_run(self.path):
            entries = sorted(self.path.iterdir(), key=lambda entry: entry.name == CONFIG)
            for entry in entries:  # config.json last: a clear cut short is still a run's folder
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        return self

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: RunConfig | dict[str, Any]) -> Path:
        """The run's config (a dict is checked against the schema first)."""
        file = self.file(CONFIG)
        return write_json(file, config_from(config, file).to_dict())

    def write_table(self, name: str, frame: pd.DataFrame) -> Path:
        return write_with(self.file(name), lambda f: frame.to_csv(f, index=False))

    def write_weights(self, model: Any, name: str = WEIGHTS) -> Path:
        """The model's weights as safetensors (no pickled code to trust when loading)."""
        from safetensors.torch import save_model

        with atomic_path(self.file(name)) as tmp:
            save_model(model, str(tmp))
        return self.file(name)

    def write_state(self, state: dict[str, Any], name: str) -> Path:
        """A state dict as safetensors, without building a model for it (each tensor its own
        copy: safetensors refuses tensors that share memory)."""
        from safetensors.torch import save_file

        tensors = {key: value.detach().clone().contiguous() for key, value in state.items()}
        with atomic_path(self.file(name)) as tmp:
            save_file(tensors, str(tmp))
        return self.file(name)

    def read_config(self) -> RunConfig:
        """The config the run wrote (when it started, then as it went on); one of another
        schema version is refused, naming both versions."""
        path = self.file(CONFIG)
        if not path.is_file():
            raise CxrltError(f"{self.path} holds no run ({CONFIG} is missing): check the path.")
        return RunConfig.from_dict(read_json(path), path)

    def read_predictions(self, classes: Sequence[str]) -> Predictions:
        """The validation predictions (see :func:`~cxrlt.outputs.run_schema.read_predictions`)."""
        return read_predictions(self.file(PREDICTIONS), classes)

    def read_split(self, fix: str) -> pd.DataFrame | None:
        """split.csv as text, or None when the run has none; ``fix`` says what to do about
        a file without ImageID and PatientID."""
        return read_split(self.file(SPLIT), fix)

    def write_split(self, split: pd.DataFrame) -> Path:
        return self.write_table(SPLIT, split)

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json: the overall means, their intervals and how the model was chosen."""
        return checked_metrics(read_json(self.file(METRICS)), self.file(METRICS))

    def read_per_class(self) -> pd.DataFrame:
        """metrics_per_class.csv, indexed by class."""
        return read_per_class(self.file(PER_CLASS))

    def read_calibration(self) -> dict[str, Any]:
        """The fitted calibrator and threshold policy, or {} for a run without them."""
        file = self.file(CALIBRATION)
        return checked_calibration(read_json(file), file) if file.is_file() else {}

    def write_calibration(self, fitted: dict[str, Any]) -> Path:
        """The fitted calibrator and threshold policy: specs and states, no pickles."""
        file = self.file(CALIBRATION)
        return write_json(file, checked_calibration(fitted, file))

    def read_submission(self) -> pd.DataFrame | None:
        """submission.csv (ids as text), or None when the run wrote none."""
        file = self.file(SUBMISSION)
        return read_submission(file) if file.is_file() else None

    def write_submission(
        self, dataset: Any, image_ids: Sequence[str], probs: np.ndarray, classes: Sequence[str]
    ) -> tuple[Path, Any]:
        """The challenge file of ``dataset``'s test task (its entry or name), validated; the
        path and the format (:func:`~cxrlt.outputs.submission.write_dataset_submission`)."""
        from cxrlt.outputs.submission import write_dataset_submission

        return write_dataset_submission(self.file(SUBMISSION), dataset, image_ids, probs, classes)

    def read_skipped(self) -> pd.DataFrame | None:
        """The rows --skip-bad left out (skipped.csv), or None when none were."""
        file = self.file(SKIPPED)
        return read_skipped(file) if file.is_file() else None

    def write_skipped(self, skipped: pd.DataFrame) -> Path:
        return self.write_table(
            SKIPPED, checked_columns(skipped, SKIPPED_COLUMNS, self.file(SKIPPED))
        )

    def read_classes(self) -> pd.DataFrame:
        """An evaluation's matching of the run's classes to the data set's (classes.csv)."""
        return read_classes(self.file(CLASSES))

    def write_classes(self, table: pd.DataFrame) -> Path:
        return self.write_table(
            CLASSES, checked_columns(table, CLASSES_COLUMNS, self.file(CLASSES))
        )

    def read_log(self) -> pd.DataFrame:
        """log.csv: one row per epoch trained (:class:`~cxrlt.training.run_log.RunLog` writes
        it, under the name :data:`LOG`)."""
        return read_log(self.file(LOG))

    def logged_epochs(self) -> int:
        """How many epochs log.csv holds (0 without one); counted by line, so a log cut short
        still counts."""
        file = self.file(LOG)
        if not file.is_file():
            return 0
        return max(0, len(file.read_text(encoding="utf-8").splitlines()) - 1)

    def write_predictions(
        self,
        image_ids: Sequence[str],
        classes: Sequence[str],
        targets: np.ndarray,
        logits: np.ndarray,
        probs: np.ndarray,
        calibrated: np.ndarray | None = None,
        predicted: np.ndarray | None = None,
    ) -> Path:
        """One row per validation image: its labels, logits, the loss's probabilities, with a
        calibrator the held-out calibrated ones, and the binary predictions of the threshold
        policy, named per class (``target:Mass``, ``predicted:Mass``; see
        :class:`~cxrlt.outputs.run_schema.Predictions`)."""
        predictions = Predictions(
            np.asarray(image_ids, dtype=object), targets, logits, probs, calibrated, predicted
        )
        return self.write_table(PREDICTIONS, predictions.frame(classes))

    def write_metrics(self, report: Report, selection: dict[str, Any] | None = None) -> Path:
        """The overall means (with ``<name>_ci``: [low, high] when the report has intervals,
        and how they were made) and the per-class table (with ``<metric>_low``, ``_high``);
        ``selection`` says how the reported model was chosen."""
        summary = metrics_summary(report)
        if selection is not None:
            summary["selection"] = selection
        write_with(self.file(PER_CLASS), lambda f: per_class_table(report).to_csv(f))
        return write_json(self.file(METRICS), summary)


def holds_run(path: Path) -> bool:
    """Whether ``path`` is a folder whose config.json cxrlt wrote (a run, an ensemble, an
    evaluation)."""
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "cxrlt_version" in config


def check_run_folder(path: Path | str, *, overwrite: bool) -> None:
    """Refuse, before any work, an ``--out`` that cannot become a run's folder: a file, a run
    kept without ``overwrite``, a config.json cxrlt did not write, a non-empty folder holding
    no run (a run would mix its files with the user's, which ``--overwrite`` would later
    clear), a place that is not writable. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CxrltError(f"--out {path} is a file, not a folder: give the path of a folder.")
    if holds_run(path):
        if not overwrite:
            raise CxrltError(
                f"{path} already holds a run: choose another --out, pass --overwrite to "
                f"replace it, or --resume {path} to continue it."
            )
    elif (path / CONFIG).exists():
        raise CxrltError(
            f"{path / CONFIG} was not written by cxrlt, so it is no run's config: cxrlt neither "
            "replaces it nor clears the folder. Choose another folder for --out."
        )
    elif path.is_dir() and any(path.iterdir()):
        raise CxrltError(
            f"--out {path} holds files and no run (no config.json), so cxrlt neither writes "
            "among them nor clears them: choose a new or empty folder for --out."
        )
    _check_writable(path, path)


def check_output_file(path: Path | str) -> None:
    """Refuse, before any work, an ``--out`` file that cannot be written: a folder, or a place
    that is not writable. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise CxrltError(
            f"--out {path} is a folder: give a file's path (a new name, or a file to replace)."
        )
    _check_writable(path, path.parent)


def _check_writable(out: Path, folder: Path) -> None:
    """The nearest existing folder on the way to ``folder`` (where ``--out`` goes) accepts a
    new file."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise CxrltError(
            f"--out {out} cannot be created: {existing} is a file, not a folder. Check the path."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".cxrlt-write-check.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise CxrltError(
            f"--out {out} cannot be written: {existing} is not writable ({error.strerror}). "
            "Choose --out in a folder you may write to, or make that folder writable."
        ) from None


def load_weights(model: Any, path: Path) -> Any:
    """Load a run's safetensors weights into ``model``; a damaged file, or one whose tensors
    are not this model's, is a :class:`CxrltError` naming it."""
    from safetensors.torch import load_model

    try:
        load_model(model, str(path))
    except FileNotFoundError:
        raise CxrltError(f"{path} is missing: the run folder is incomplete.") from None
    except Exception as error:  # noqa: BLE001 - safetensors and torch raise their own kinds
        raise CxrltError(_damaged(path, error)) from None
    return model


def read_weights(path: Path) -> dict[str, Any]:
    """A run's safetensors weights as a state dict (see :func:`load_weights`)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CxrltError(f"{path} is missing: the run folder is incomplete.") from None
    except Exception as error:  # noqa: BLE001 - safetensors raises its own kinds
        raise CxrltError(_damaged(path, error)) from None


def check_weights(path: Path) -> None:
    """Read only the header of a safetensors file: a truncated or foreign file stops here,
    before any work, rather than when the weights are loaded."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            file.keys()
    except FileNotFoundError:
        raise CxrltError(f"{path} is missing: the run folder is incomplete.") from None
    except Exception as error:  # noqa: BLE001 - safetensors raises its own kinds
        raise CxrltError(_damaged(path, error)) from None


def _damaged(path: Path, error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"{path} cannot be read as this run's weights ({first[:200]}): the file is damaged "
        "(cut off by a full disk or a copy?) or belongs to another model. Restore it from "
        "where the run was made, or train the run again."
    )
