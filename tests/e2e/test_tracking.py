"""``cxrlt run --log``: a tiny run recorded by MLflow, TensorBoard and CSV, read back with each
tool's own reader; a store that cannot be opened stops the run before any work."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.pytest_plugin import TINY_DATA

EPOCHS = 2
RUN = ["run", "--dataset", TINY_DATA, "--size", "32", "--bs", "32", "--epochs", str(EPOCHS)]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracked")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    log = f"mlflow:uri={store},experiment=tiny,tensorboard,csv"
    result = CliRunner().invoke(app, [*RUN, "--log", log, "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return folder / "run", store


@pytest.mark.slow
def test_mlflow_holds_the_specs_epochs_final_metrics_and_files(tracked_run):
    from mlflow.tracking import MlflowClient

    run_path, store = tracked_run
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tiny")
    (tracked,) = client.search_runs([experiment.experiment_id])
    config = json.loads((run_path / "config.json").read_text())
    metrics = json.loads((run_path / "metrics.json").read_text())

    assert tracked.info.status == "FINISHED" and tracked.info.run_name == "run"
    params = tracked.data.params
    assert params["epochs"] == str(EPOCHS) and params["log"].startswith("mlflow:")
    assert params["spec.loss"] == config["specs"]["loss"]["spec"]
    assert params["spec.arch"] == config["specs"]["arch"]["spec"]
    history = client.get_metric_history(tracked.info.run_id, "epoch/valid_loss")
    assert [metric.step for metric in history] == list(range(1, EPOCHS + 1))
    final = tracked.data.metrics
    assert final["mAP"] == pytest.approx(metrics["mAP"])
    assert (final["mAP_ci_low"], final["mAP_ci_high"]) == pytest.approx(metrics["mAP_ci"])
    artifacts = {artifact.path for artifact in client.list_artifacts(tracked.info.run_id)}
    assert {"config.json", "metrics.json", "log.csv", "model.safetensors"} <= artifacts
    assert (store.removeprefix("sqlite:///").rsplit("/", 1)[0]) in tracked.info.artifact_uri


@pytest.mark.slow
def test_tensorboard_event_files_hold_each_epoch(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_path, _ = tracked_run
    events = EventAccumulator(str(run_path / "tensorboard")).Reload()
    assert [event.step for event in events.Scalars("valid_loss")] == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_the_csv_table_holds_params_epochs_and_final_metrics(tracked_run):
    run_path, _ = tracked_run
    with open(run_path / "tracking.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(r["step"]) for r in rows if r["kind"] == "epoch" and r["name"] == "valid_loss"]
    assert epochs == list(range(1, EPOCHS + 1))
    final = {r["name"]: float(r["value"]) for r in rows if r["kind"] == "final"}
    assert final["mAP"] == pytest.approx(json.loads((run_path / "metrics.json").read_text())["mAP"])
    assert rows[-1]["value"] == "FINISHED"


@pytest.mark.slow
def test_a_store_that_cannot_be_opened_stops_the_run_before_its_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = tmp_path / "run"
    log = f"mlflow:uri=sqlite:///{blocker / 'mlflow.db'}"
    result = CliRunner().invoke(app, [*RUN, "--log", log, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "could not open its store" in " ".join(result.output.split())
    assert not out.exists()


@pytest.mark.slow
def test_sweep_cells_are_tracked_with_their_grid_position(tmp_path):
    from mlflow.tracking import MlflowClient
    from rich.console import Console

    from cxrlt.executors import run_sweep
    from cxrlt.options import RunOptions
    from cxrlt.sweep import Sweep

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = RunOptions(
        dataset=TINY_DATA, size=32, bs=32, epochs=1, log=f"mlflow:uri={store},experiment=grid"
    )
    sweep = Sweep.from_text(tmp_path / "sweep", "bce", "resnet18", "none,temp-scale", 1, options)
    assert run_sweep(sweep, Console(quiet=True)) == []
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("grid").experiment_id])
    tags = sorted((r.data.tags["cell"], r.data.tags["post"], r.data.tags["seed"]) for r in runs)
    assert tags == sorted((cell.name, cell.post, "0") for cell in sweep.runs)
    assert all(r.info.status == "FINISHED" and r.data.tags["loss"] == "bce" for r in runs)
