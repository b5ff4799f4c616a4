"""Experiment trackers: what they receive from training, how their failures are contained,
and their names checked with every other spec before any work."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from fastai.test_utils import synth_learner

from cxrlt.errors import CxrltError
from cxrlt.options import RunOptions
from cxrlt.sweep import Sweep, cell_tags
from cxrlt.training.tracking import (
    FAILED,
    FINISHED,
    CsvTracker,
    TrackedRun,
    Tracker,
    Tracking,
    final_metrics,
)
from cxrlt.workflows.specs import check_options


class Recording(Tracker):
    """Keeps what it is told."""

    def __init__(self, fail_at_epoch: int | None = None) -> None:
        self.fail_at_epoch = fail_at_epoch
        self.epochs: list[tuple[int, dict]] = []
        self.finished: list[tuple[dict, str]] = []

    def start(self, run):
        self.started = run

    def log_epoch(self, epoch, values):
        if epoch == self.fail_at_epoch:
            raise ConnectionError("server gone")
        self.epochs.append((epoch, dict(values)))

    def finish(self, metrics, status):
        self.finished.append((dict(metrics), status))


def tracked(path, **tags) -> TrackedRun:
    return TrackedRun("r", path, {"loss": "bce", "epochs": "3"}, tags)


def test_a_tracker_receives_each_epoch_values_from_the_recorder(tmp_path):
    tracker = Recording()
    Tracking.start({"recording": tracker}, tracked(tmp_path))
    learn = synth_learner(cbs=tracker)
    learn.fit(3, 1e-2)
    assert [epoch for epoch, _ in tracker.epochs] == [1, 2, 3]
    recorded = [values for _, values in tracker.epochs]
    assert all(set(values) == {"train_loss", "valid_loss"} for values in recorded)
    assert [values["valid_loss"] for values in recorded] == pytest.approx(
        [row[1] for row in learn.recorder.values]
    )


def test_a_tracker_failing_mid_training_warns_and_training_goes_on(tmp_path):
    tracker = Recording(fail_at_epoch=2)
    Tracking.start({"recording": tracker}, tracked(tmp_path))
    learn = synth_learner(cbs=tracker)
    with pytest.warns(RuntimeWarning, match="--log recording failed while recording an epoch"):
        learn.fit(3, 1e-2)
    assert len(learn.recorder.values) == 3  # trained to the end
    assert [epoch for epoch, _ in tracker.epochs] == [1]  # and the tracker stopped


def test_a_store_that_cannot_be_opened_stops_naming_the_logger(tmp_path):
    class Unreachable(Recording):
        def start(self, run):
            raise ConnectionError("connection refused")

    first = Recording()
    with pytest.raises(CxrltError, match=r"--log remote:uri=x.*connection refused"):
        Tracking.start({"first": first, "remote:uri=x": Unreachable()}, tracked(tmp_path))
    assert first.finished == [({}, FAILED)]  # the one already started is told the run stopped


def test_finish_tells_the_status_and_drops_metrics_of_an_unfinished_run(tmp_path):
    tracker = Recording()
    tracking = Tracking.start({"recording": tracker}, tracked(tmp_path))
    tracking.finish({"mAP": 0.5}, FAILED)
    tracking.finish({"mAP": 0.5})
    assert tracker.finished == [({}, FAILED), ({"mAP": 0.5}, FINISHED)]


def test_final_metrics_flatten_the_intervals():
    summary = {
        "mAP": 0.25,
        "mAP_ci": [0.2, 0.3],
        "n_images": 31,
        "excluded": ["a"],
        "intervals": {"method": "bootstrap"},
        "groups": "thirds",
    }
    assert final_metrics(summary) == {
        "mAP": 0.25,
        "mAP_ci_low": 0.2,
        "mAP_ci_high": 0.3,
        "n_images": 31.0,
    }


def test_one_csv_table_gathers_several_runs(tmp_path):
    table = tmp_path / "all.csv"
    for name in ("a", "b"):
        tracker = CsvTracker(path=str(table))
        tracker.start(tracked(tmp_path / name))
        tracker.log_epoch(1, {"valid_loss": 0.7})
        tracker.finish({"mAP": 0.4}, FINISHED)
    with open(table, newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(CsvTracker.COLUMNS)
    for name in ("a", "b"):
        own = {(r["kind"], r["name"]): r["value"] for r in rows if r["run"] == str(tmp_path / name)}
        assert own == {
            ("param", "loss"): "bce",
            ("param", "epochs"): "3",
            ("epoch", "valid_loss"): "0.7",
            ("final", "mAP"): "0.4",
            ("status", "status"): FINISHED,
        }


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("mlfow", "Unknown logger 'mlfow'.*mlflow"),
        ("csv,tensorbord", "Unknown logger 'tensorbord'"),
        ("mlflow:urii=x", "no parameter 'urii'.*Did you mean 'uri'"),
        ("mlflow:experiment=''", "needs an experiment name"),
    ],
)
def test_bad_logger_names_and_parameters_are_refused_before_any_work(log, message):
    with pytest.raises(CxrltError, match=message):
        check_options(RunOptions(log=log))


def test_good_logger_specs_resolve_in_order():
    specs = check_options(RunOptions(log="tensorboard,mlflow:uri=http://host:5000,csv"))
    assert [spec.spec.name for spec in specs.loggers] == ["tensorboard", "mlflow", "csv"]
    assert specs.loggers[1].spec.params["uri"] == "http://host:5000"
    assert check_options(RunOptions()).loggers == ()


def test_sweep_cells_are_tagged_with_their_grid_position(tmp_path):
    options = dataclasses.replace(RunOptions(), log="csv")
    sweep = Sweep.from_text(tmp_path / "sweep", "bce,focal", "resnet18", "none,tta", 2, options)
    sweep.save()
    cell = next(c for c in sweep.cells if c.loss == "focal" and c.post == "tta" and c.seed == 1)
    assert cell_tags(sweep.path(cell)) == {
        "sweep": str((tmp_path / "sweep").resolve()),
        "cell": cell.name,
        "loss": "focal",
        "arch": "resnet18",
        "post": "tta",
        "seed": "1",
    }
    assert cell_tags(tmp_path / "elsewhere") == {}
    assert cell_tags(tmp_path / "sweep" / "not-a-cell") == {}


@pytest.mark.parametrize(("name", "extra"), [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_logger_whose_package_is_missing_names_the_install(monkeypatch, name, extra):
    from cxrlt.registry import resolve
    from cxrlt.training import tracking

    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda module: None)
    with pytest.raises(CxrltError, match=rf"pip install 'cxrlt\[{extra}\]'"):
        resolve("loggers", name).build()
