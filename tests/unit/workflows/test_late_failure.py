"""A failure or Ctrl-C late in a run keeps what was done and says how to go on."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from cxrlt.calibration import held_out
from cxrlt.cli import app
from cxrlt.outputs.run_dir import CONFIG, LOG, WEIGHTS
from cxrlt.workflows import data, training
from cxrlt.workflows import run as workflow
from tests.helpers.refusal import flat, refused

TINY = ["--dataset", "synthetic:n_images=160,size=32", "--size", "32", "--bs", "32"]


def status(out) -> str:
    return json.loads((out / CONFIG).read_text())["status"]


@pytest.fixture(scope="module")
def failed_after_training(tmp_path_factory):
    """A 2-epoch run whose calibration fails once training and tau-norm are done."""
    out = tmp_path_factory.mktemp("late") / "run"
    mp = pytest.MonkeyPatch()

    def broken(*args, **kwargs):
        raise ValueError("calibration blew up")

    mp.setattr(held_out, "fit_held_out", broken)
    try:
        output = refused(
            ["run", *TINY, "--epochs", "2", "--post", "tau-norm,temp-scale", "--out", out],
            "ValueError: calibration blew up",
            f"the traceback is in {out / 'error.txt'}",
            "Training had finished: its weights are kept in",
            f"cxrlt run --resume {out}",
            f"cxrlt run --from-run {out}",
        )
    finally:
        mp.undo()
    return out, output


@pytest.mark.slow
def test_a_late_failure_keeps_the_trained_model(failed_after_training):
    out, _ = failed_after_training
    assert status(out) == "trained"
    config = json.loads((out / CONFIG).read_text())
    assert config["training"]["epochs_done"] == 2 and config["post"] == []
    assert (out / WEIGHTS).is_file() and (out / LOG).is_file()
    assert "calibration blew up" in (out / "error.txt").read_text()  # for a bug report


@pytest.mark.slow
def test_resume_post_trains_the_kept_model_without_training_again(failed_after_training, tmp_path):
    out, _ = failed_after_training
    run = tmp_path / "resumed"
    shutil.copytree(out, run)
    log = (run / LOG).read_bytes()
    result = CliRunner().invoke(app, ["run", "--resume", str(run), "--post", "tau-norm,platt"])
    assert result.exit_code == 0, result.output
    assert (run / LOG).read_bytes() == log  # no epoch trained again
    config = json.loads((run / CONFIG).read_text())
    assert config["status"] == "complete" and config["options"]["post"] == "tau-norm,platt"
    assert [step["name"] for step in config["post"]] == ["tau-norm"]


@pytest.mark.slow
def test_from_run_accepts_a_run_that_failed_after_training(failed_after_training, tmp_path):
    """Its weights are the trained ones (tau-norm, done before the failure, was not kept),
    so a post-training step that changes weights applies once."""
    out, _ = failed_after_training
    new = tmp_path / "post"
    result = CliRunner().invoke(
        app, ["run", "--from-run", str(out), "--post", "tau-norm", "--out", str(new)]
    )
    assert result.exit_code == 0, result.output
    assert "no training" in flat(result.output) and status(new) == "complete"
    config = json.loads((new / CONFIG).read_text())
    assert [step["name"] for step in config["post"]] == ["tau-norm"]


@pytest.mark.slow
def test_resume_takes_no_other_option_than_post(failed_after_training):
    out, _ = failed_after_training
    refused(
        ["run", "--resume", out, "--epochs", "3"],
        "only --post may change",
        "leave out --epochs",
        untouched=[out],
    )


@pytest.mark.slow
def test_ctrl_c_during_training_prints_the_resume_command(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = workflow.build_branches

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "build_branches", interrupted)
    refused(
        ["run", *TINY, "--epochs", "2", "--out", out],
        "Interrupted after 2 of 2 epochs",
        f"Continue it with: cxrlt run --resume {out}",
        code=130,
    )
    monkeypatch.setattr(workflow, "build_branches", real)
    result = CliRunner().invoke(app, ["run", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert status(out) == "complete"


@pytest.mark.slow
def test_ctrl_c_before_an_overwriting_run_started_keeps_the_old_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", *TINY, "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "run_dataloaders", interrupted)
    refused(
        ["run", *TINY, "--epochs", "1", "--out", out, "--overwrite"],
        "Interrupted before training started; nothing was written",
        code=130,
        untouched=[out],
    )


def test_ctrl_c_before_training_says_nothing_was_written(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "run_dataloaders", interrupted)
    refused(
        ["run", *TINY, "--out", out],
        "Interrupted before training started; nothing was written",
        "Run the same command again",
        code=130,
        absent=[out],
    )


@pytest.mark.slow
def test_resume_of_a_run_stopped_before_its_first_epoch_trains_afresh(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_and_checkpoint", stopped)
    refused(["run", *TINY, "--epochs", "1", "--out", out], "after 0 of 1 epochs", code=130)
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["run", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert "training afresh" in flat(result.output) and status(out) == "complete"


def test_a_corrupt_test_image_stops_the_run_before_training(tmp_path, monkeypatch):
    from cxrlt.data.synthetic import write_synthetic_cxr

    data = write_synthetic_cxr(tmp_path / "data", n_images=80, size=32, seed=2, n_test=6)
    test_ids = (data / "test_task1.csv").read_text().split()[1:]
    (data / "images" / test_ids[2]).write_bytes(b"not a png")

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the test images were checked")

    monkeypatch.setattr(training, "train_and_checkpoint", no_training)
    out = tmp_path / "run"
    refused(
        [
            "run",
            "--dataset",
            "cxr-lt-2026",
            "--data",
            data,
            "--size",
            "32",
            "--no-pretrained",
            "--out",
            out,
        ],
        "1 of 6 test images cannot be read",
        test_ids[2],
        "Nothing was trained: fix or replace the files",
        absent=[out],
    )
