"""Experiment trackers: fastai callbacks picked by name (``--log mlflow,tensorboard``) that
record a run somewhere besides its run directory: its resolved specs as parameters, each
epoch's values, the final metrics with their intervals and, where the tracker keeps files,
the run directory's files.

A tracker opens its store before the data is read, so a store that cannot be opened (a
server that does not answer, a path that cannot be written) stops the run before any work.
Once training has started, a tracker that fails warns and is left out, and the run goes on:
its run directory holds everything the tracker would have recorded.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastai.callback.core import Callback

from cxrlt.errors import CxrltError
from cxrlt.training.events import predicting

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"  # how a tracked run ended


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker is told of a run as it starts: its name and folder, its options and
    resolved specs as text (``params``) and where it sits in a sweep (``tags``)."""

    name: str
    path: Path
    params: Mapping[str, str]
    tags: Mapping[str, str]


class Tracker(Callback):
    """A tracker: implement ``start`` (open the store; raise when it cannot be opened),
    ``log_epoch`` and ``finish``. Being a fastai callback, it may act on any other training
    event too. ``after_epoch`` hands it the values the Recorder has just logged."""

    order = 60  # after the Recorder has the epoch's values
    during_post_training = False  # the per-epoch values are the main training's
    label = ""  # the spec it was built from (set by Tracking), for messages

    def start(self, run: TrackedRun) -> None:
        raise NotImplementedError

    def log_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        raise NotImplementedError

    def finish(self, metrics: Mapping[str, float], status: str) -> None:
        """``metrics``: the run's final metrics (none when it did not finish); ``status``:
        FINISHED, FAILED or KILLED."""
        raise NotImplementedError

    def after_epoch(self) -> None:
        if predicting(self.learn) or getattr(self, "broken", False):
            return
        recorder = self.learn.recorder
        last = recorder.values[-1]
        names = recorder.metric_names[1 : len(last) + 1]  # less epoch and time
        values = {name: float(value) for name, value in zip(names, last, strict=True)}
        try:
            self.log_epoch(self.epoch + 1, values)
        except Exception as error:  # noqa: BLE001 - the training goes on, the tracker stops
            self.broken = True
            _warn(self, "recording an epoch", error)


class Tracking:
    """The trackers of one run, started together before the data is read."""

    def __init__(self, trackers: Sequence[Tracker] = ()) -> None:
        self.trackers = list(trackers)

    @classmethod
    def start(cls, trackers: Mapping[str, Tracker], run: TrackedRun) -> Tracking:
        """Each tracker (by its spec) started on ``run``; one whose store cannot be opened
        stops the run, naming it."""
        started = cls()
        for label, tracker in trackers.items():
            tracker.label = label
            try:
                tracker.start(run)
            except Exception as error:
                started.finish({}, FAILED)  # the run stops: those already started say so
                if isinstance(error, CxrltError):
                    raise
                raise CxrltError(
                    f"--log {label}: the logger could not open its store "
                    f"({type(error).__name__}: {error}). Check its parameters (`cxrlt show "
                    f"logger {label.partition(':')[0]}`), or leave it out of --log."
                ) from error
            started.trackers.append(tracker)
        return started

    def finish(self, metrics: Mapping[str, float], status: str = FINISHED) -> None:
        """Every tracker told how the run ended; a tracker that fails warns."""
        for tracker in self.trackers:
            try:
                tracker.finish(metrics if status == FINISHED else {}, status)
            except Exception as error:  # noqa: BLE001 - the run directory is complete
                _warn(tracker, "finishing", error)


def _warn(tracker: Tracker, doing: str, error: Exception) -> None:
    warnings.warn(
        f"--log {tracker.label or type(tracker).__name__} failed while {doing} "
        f"({type(error).__name__}: {error}); it records no more of this run, which goes on: "
        "its run directory holds every result.",
        RuntimeWarning,
        stacklevel=2,
    )


def final_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """metrics.json's overall numbers as flat metrics: each mean, and its interval
    (``<name>_ci``: [low, high]) as ``<name>_ci_low`` and ``<name>_ci_high``."""
    metrics: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics[key] = float(value)
        elif key.endswith("_ci") and isinstance(value, list | tuple) and len(value) == 2:
            metrics[f"{key}_low"], metrics[f"{key}_high"] = (float(v) for v in value)
    return metrics


def _require(module: str, extra: str, logger: str) -> None:
    """An error naming the package to install unless ``module`` is installed (found, not
    imported: the check runs before every run and MLflow takes seconds to import)."""
    if importlib.util.find_spec(module) is None:
        raise CxrltError(
            f"The logger {logger!r} needs the {extra} package: pip install 'cxrlt[{extra}]'."
        )


class MLflowTracker(Tracker):
    """A run in an MLflow tracking store: each epoch's values as ``epoch/<name>`` by epoch,
    the final metrics under their own names. Without ``uri``: ``MLFLOW_TRACKING_URI`` if set,
    else the SQLite store ``mlflow.db`` in the current folder (files under ./mlruns beside
    it), which ``mlflow ui`` opens there with no server to run."""

    def __init__(self, uri: str | None = None, experiment: str = "cxrlt", artifacts: bool = True):
        _require("mlflow", "mlflow", "mlflow")
        if not experiment:
            raise CxrltError("The logger 'mlflow' needs an experiment name: experiment=NAME.")
        self.uri, self.experiment, self.artifacts = uri, experiment, artifacts

    @property
    def tracking_uri(self) -> str:
        default = f"sqlite:///{Path('mlflow.db').resolve()}"
        return self.uri or os.environ.get("MLFLOW_TRACKING_URI") or default

    def start(self, run: TrackedRun) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else self._create_experiment()
        created = self.client.create_run(experiment_id, run_name=run.name, tags=dict(run.tags))
        self.run_id, self.run_path = created.info.run_id, run.path
        params = [Param(key, value) for key, value in run.params.items()]
        self.client.log_batch(self.run_id, params=params)

    def _create_experiment(self) -> str:
        """A new experiment; a SQLite store's keeps its files beside the database (in
        ``mlruns``), not in the current folder, MLflow's default."""
        uri, location = self.tracking_uri, None
        if uri.startswith("sqlite:///"):
            location = (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def _log(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        # Apart from the final metrics, which the runs table shows: the Recorder's mAP is the
        # epoch's, not the reported model's.
        self._log({f"epoch/{key}": value for key, value in values.items()}, epoch)

    def finish(self, metrics: Mapping[str, float], status: str) -> None:
        try:
            self._log(metrics, 0)
            if self.artifacts and status == FINISHED:
                self.client.log_artifacts(self.run_id, str(self.run_path))
        finally:
            self.client.set_terminated(self.run_id, status)


class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``log_dir`` (relative to the run directory unless
    absolute): each epoch's values as scalars, the final metrics with the specs as hparams."""

    def __init__(self, log_dir: str = "tensorboard"):
        _require("tensorboard", "tensorboard", "tensorboard")
        self.log_dir = log_dir

    def start(self, run: TrackedRun) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = run.path / self.log_dir
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self.params = {**run.params, **run.tags}

    def log_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def finish(self, metrics: Mapping[str, float], status: str) -> None:
        if metrics:
            final = {f"final/{key}": value for key, value in metrics.items()}
            self.writer.add_hparams(dict(self.params), final, run_name=".")
        self.writer.close()


class CsvTracker(Tracker):
    """One long CSV table (run, kind, step, name, value) of the parameters, each epoch's
    values and the final metrics. ``path`` is relative to the run directory unless absolute;
    an absolute one shared by several runs gathers them in one table."""

    COLUMNS = ("run", "kind", "step", "name", "value")

    def __init__(self, path: str = "tracking.csv"):
        self.file = path

    def start(self, run: TrackedRun) -> None:
        self.table, self.run_name = run.path / self.file, str(run.path)
        self.table.parent.mkdir(parents=True, exist_ok=True)
        if not self.table.is_file() or not self.table.stat().st_size:
            self._append([self.COLUMNS])
        params = run.params.items()
        self._append([(self.run_name, "param", "", key, value) for key, value in params])

    def _append(self, rows: Sequence[Sequence[Any]]) -> None:
        import csv

        with open(self.table, "a", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows(rows)

    def log_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        self._append([(self.run_name, "epoch", epoch, key, value) for key, value in values.items()])

    def finish(self, metrics: Mapping[str, float], status: str) -> None:
        rows = [(self.run_name, "final", "", key, value) for key, value in metrics.items()]
        self._append([*rows, (self.run_name, "status", "", "status", status)])
