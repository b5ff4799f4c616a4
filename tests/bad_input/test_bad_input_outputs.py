"""Bad input around run directories and output paths, for ``report``, ``compare``,
``ensemble``, ``predict`` and ``run``: broken runs, outputs where they cannot go, runs that
must not be overwritten. Each stops with exit code 2, a message naming the problem and its fix,
and leaves every file as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from cxrlt.data.synthetic import write_synthetic_cxr
from cxrlt.io import write_json
from tests.helpers.refusal import refused
from tests.unit.outputs.test_report import make_run

TINY = ["--dataset", "synthetic:n_images=160,size=32", "--size", "32", "--epochs", "1"]
TINY += ["--bs", "16", "--no-pretrained"]
skip_as_root = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run, written by hand as ``cxrlt run`` leaves it."""
    return make_run(tmp_path / "run")


@pytest.fixture
def kept_run(tmp_path) -> Path:
    """A run an overwrite must leave byte for byte as it is when the new run is refused."""
    folder = tmp_path / "kept"
    folder.mkdir()
    write_json(folder / "config.json", {"cxrlt_version": "0.1.0", "status": "complete"})
    for name in ("model.safetensors", "submission.csv", "log.csv"):
        (folder / name).write_text(f"the previous run's {name}")
    return folder


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


# ---- report --------------------------------------------------------------------------------


def break_config(run: Path) -> None:
    (run / "config.json").write_text('{"status": "comp')


def drop_predictions(run: Path) -> None:
    (run / "valid_predictions.csv").unlink()


def drop_config(run: Path) -> None:
    (run / "config.json").unlink()


def drop_prob_column(run: Path) -> None:
    frame = pd.read_csv(run / "valid_predictions.csv")
    frame.drop(columns=["prob:finding 3"]).to_csv(run / "valid_predictions.csv", index=False)


def split_without_patients(run: Path) -> None:
    frame = pd.read_csv(run / "split.csv")
    frame.drop(columns=["PatientID"]).to_csv(run / "split.csv", index=False)


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (drop_config, ["is not a complete run: config.json is missing"]),
        (break_config, ["config.json cannot be read as JSON", "Restore the file"]),
        (drop_predictions, ["is not a complete run: valid_predictions.csv is missing"]),
        (drop_prob_column, ["valid_predictions.csv lacks the columns prob:finding 3"]),
        (split_without_patients, ["lacks the columns ImageID and PatientID", "restore the run's"]),
    ],
)
def test_report_of_a_broken_run(run, damage, fragments):
    damage(run)
    refused(["report", run], str(run), *fragments, untouched=[run])


def test_report_of_a_file(tmp_path):
    file = tmp_path / "metrics.json"
    file.write_text("{}")
    refused(["report", file], f"{file} is not a folder", "give the folder of a cxrlt run")


def test_report_plots_to_a_file(run, tmp_path):
    blocker = tmp_path / "plots.png"
    blocker.write_bytes(b"png")
    refused(
        ["report", run, "--out", blocker],
        f"{blocker} is a file, not a folder",
        untouched=[blocker, run],
    )


# ---- compare -------------------------------------------------------------------------------


def test_compare_writes_over_a_folder(run, tmp_path):
    folder = tmp_path / "table.csv"
    folder.mkdir()
    refused(
        ["compare", run, "--out", tmp_path / "table"],
        f"--out {folder} is a folder",
        "give a file's path",
        untouched=[folder, run],
        absent=[tmp_path / "table.md"],
    )


def test_compare_below_a_file(run, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("notes")
    refused(
        ["compare", run, "--out", blocker / "comparison"],
        str(blocker),
        "is a file, not a folder",
        untouched=[blocker, run],
    )


def test_compare_a_run_without_metrics(run, tmp_path):
    (run / "metrics.json").unlink()
    refused(
        ["compare", run, "--out", tmp_path / "c"],
        f"{run} is not a complete run: metrics.json is missing",
        absent=[tmp_path / "c.csv", tmp_path / "c.md"],
    )


# ---- ensemble ------------------------------------------------------------------------------


def test_ensemble_of_one_run(run, tmp_path):
    out = tmp_path / "ensemble"
    refused(["ensemble", run, "--out", out], "needs at least two runs", absent=[out])


def test_ensemble_of_runs_with_other_classes(run, tmp_path):
    other = make_run(tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["data"]["classes"][0] = "Edema"
    (other / "config.json").write_text(json.dumps(config))
    predictions = pd.read_csv(other / "valid_predictions.csv")
    renamed = {name: name.replace("finding 0", "Edema") for name in predictions.columns}
    predictions.rename(columns=renamed).to_csv(other / "valid_predictions.csv", index=False)
    out = tmp_path / "ensemble"
    refused(
        ["ensemble", run, other, "--out", out],
        f"{other} predicts other classes than {run}",
        untouched=[run, other],
        absent=[out],
    )


def test_ensemble_of_runs_on_other_splits(run, tmp_path):
    other = make_run(tmp_path / "other", seed=1)
    out = tmp_path / "ensemble"
    refused(
        ["ensemble", run, other, "--out", out],
        "was validated on other images",
        "same data set, --valid-frac and --seed",
        absent=[out],
    )


def test_ensemble_into_a_run_without_overwrite(run, tmp_path, kept_run):
    other = make_run(tmp_path / "other")
    refused(
        ["ensemble", run, other, "--out", kept_run],
        f"{kept_run} already holds a run",
        "pass --overwrite",
        untouched=[kept_run],
    )


def test_ensemble_overwriting_a_folder_that_is_no_run(run, tmp_path):
    other = make_run(tmp_path / "other")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    refused(
        ["ensemble", run, other, "--out", folder, "--overwrite"],
        "holds files and no run",
        "choose a new or empty folder",
        untouched=[folder],
    )


def test_ensemble_out_is_a_file(run, tmp_path):
    other = make_run(tmp_path / "other")
    file = tmp_path / "ensemble.csv"
    file.write_text("a file")
    refused(
        ["ensemble", run, other, "--out", file],
        f"--out {file} is a file, not a folder",
        "give the path of a folder",
        untouched=[file],
    )


# ---- predict -------------------------------------------------------------------------------


def test_predict_with_a_folder_that_holds_no_run(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    out = tmp_path / "submission.csv"
    refused(
        ["predict", folder, "--out", out],
        f"{folder} holds no run (config.json is missing)",
        "check the path",
        absent=[out],
    )


def test_predict_with_an_unfinished_run(tmp_path):
    folder = tmp_path / "unfinished"
    folder.mkdir()
    options = {"dataset": "synthetic:n_images=80,size=32,n_test=8"}
    write_json(folder / "config.json", {"status": "training", "options": options})
    out = tmp_path / "submission.csv"
    refused(
        ["predict", folder, "--out", out, "--device", "cpu"],
        f"{folder} is not a complete run",
        f"cxrlt run --resume {folder}",
        untouched=[folder],
        absent=[out],
    )


def test_predict_below_a_file(tmp_path, kept_run):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("notes")
    refused(
        ["predict", kept_run, "--out", blocker / "submission.csv"],
        f"{blocker} is a file, not a folder",
        untouched=[blocker, kept_run],
    )


@skip_as_root
def test_predict_into_a_read_only_folder(kept_run, read_only):
    refused(
        ["predict", kept_run, "--out", read_only / "submission.csv"],
        f"{read_only} is not writable",
        "Choose --out in a folder you may write to",
        untouched=[read_only, kept_run],
    )


# ---- run -----------------------------------------------------------------------------------


def test_run_into_a_run_without_overwrite(kept_run):
    refused(
        ["run", *TINY, "--out", kept_run],
        f"{kept_run} already holds a run",
        "pass --overwrite to replace it, or --resume",
        untouched=[kept_run],
    )


def test_run_into_a_folder_whose_config_cxrlt_did_not_write(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"learning_rate": 0.1}')
    refused(
        ["run", *TINY, "--out", folder],
        f"{folder / 'config.json'} was not written by cxrlt",
        "Choose another folder for --out",
        untouched=[folder],
    )


def test_an_overwrite_refused_for_a_bad_option_keeps_the_old_run(kept_run):
    refused(
        ["run", *TINY, "--loss", "focal:gamma=oops", "--out", kept_run, "--overwrite"],
        "gamma",
        untouched=[kept_run],
    )


def test_an_overwrite_refused_for_bad_data_keeps_the_old_run(kept_run, tmp_path):
    data = write_synthetic_cxr(tmp_path / "data", n_images=80, size=32, seed=2)
    first = pd.read_csv(data / "train.csv", dtype=str)["ImageID"][0]
    (data / "images" / first).write_bytes(b"not an image")
    refused(
        ["run", *TINY, "--dataset", "cxr-lt-2026", "--data", data, "--out", kept_run]
        + ["--overwrite"],
        "line 2",
        "--skip-bad",
        untouched=[kept_run],
    )


@skip_as_root
def test_run_into_a_read_only_folder(read_only):
    refused(
        ["run", *TINY, "--out", read_only / "run"],
        f"{read_only} is not writable",
        "Choose --out in a folder you may write to",
        untouched=[read_only],
    )
