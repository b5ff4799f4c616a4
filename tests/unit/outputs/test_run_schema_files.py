"""Every file of a run directory is written and read through the schema: the options typed as
RunOptions, and each other table's columns (record's keys) declared once and checked on read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import evaluate
from cxrlt.options import RUN_OPTIONS, RunOptions
from cxrlt.outputs.run_dir import (
    CALIBRATION,
    CLASSES,
    CONFIG,
    LOG,
    METRICS,
    PER_CLASS,
    SKIPPED,
    SUBMISSION,
    RunDir,
)
from cxrlt.outputs.run_schema import (
    CLASSES_COLUMNS,
    PER_CLASS_COLUMNS,
    SCHEMA_VERSION,
    SKIPPED_COLUMNS,
    RunConfig,
)
from cxrlt.workflows.saved import from_run_options, resume_options, saved_options

CLASSES_ = ("Mass", "Nodule", "Pleural Effusion")


def _run(tmp_path: Path, options: dict | RunOptions | None = None) -> RunDir:
    run_dir = RunDir(tmp_path / "run", check=False)
    run_dir.write_config(RunConfig(status="complete", options=options or RunOptions()))
    return run_dir


def _write_raw_config(run_dir: RunDir, options: dict) -> None:
    run_dir.path.mkdir(parents=True, exist_ok=True)
    raw = {"cxrlt_version": "0.1.0", "status": "complete", "options": options}
    run_dir.file(CONFIG).write_text(json.dumps(raw))


# ---- options -----------------------------------------------------------------------------------


def test_the_options_are_written_whole_and_read_back_typed(tmp_path):
    options = RunOptions(dataset="synthetic", size=32, out=tmp_path / "out", backbone_lr=1e-4)
    run_dir = _run(tmp_path, options)
    written = json.loads(run_dir.file(CONFIG).read_text())["options"]
    assert list(written) == [field.name for field in RUN_OPTIONS]  # every one, None kept
    assert written["out"] == str(tmp_path / "out") and written["data"] is None
    read = run_dir.read_config().options
    assert isinstance(read, RunOptions) and read == options
    assert isinstance(read.out, Path) and read.size == 32


def test_a_dict_of_options_is_checked_and_typed_when_written(tmp_path):
    run_dir = _run(tmp_path, {"size": 32, "valid-frac": 1})  # either spelling, an int for a float
    options = run_dir.read_config().options
    assert options == RunOptions(size=32, valid_frac=1.0, select="best")
    assert isinstance(options.valid_frac, float)


def test_an_older_config_lacking_options_reads_them_as_that_run_did(tmp_path):
    """Options a run from before them lacks take their defaults, but ``select``: such a run
    chose the epoch best on every validation image."""
    run_dir = RunDir(tmp_path / "run", check=False)
    _write_raw_config(run_dir, {"loss": "focal", "epochs": 3})
    options = run_dir.read_config().options
    assert options == RunOptions(loss="focal", epochs=3, select="best")
    _write_raw_config(run_dir, {"select": "last"})
    assert run_dir.read_config().options.select == "last"


def test_an_unknown_option_is_refused_naming_file_key_and_schema_version(tmp_path):
    run_dir = RunDir(tmp_path / "run", check=False)
    _write_raw_config(run_dir, {"loss": "bce", "sizee": 32})
    with pytest.raises(CxrltError) as error:
        run_dir.read_config()
    text = str(error.value)
    assert str(run_dir.file(CONFIG)) in text and "'sizee'" in text and "'size'" in text
    assert f"schema version {SCHEMA_VERSION}" in text


def test_an_option_of_the_wrong_type_is_refused_naming_it(tmp_path):
    run_dir = RunDir(tmp_path / "run", check=False)
    _write_raw_config(run_dir, {"size": "big"})
    with pytest.raises(CxrltError, match=r"option 'size' is 'big', expected int") as error:
        run_dir.read_config()
    assert str(run_dir.file(CONFIG)) in str(error.value)
    with pytest.raises(CxrltError, match="options"):
        RunDir(tmp_path / "other", check=False).write_config({"options": {"size": "big"}})


def test_saved_options_come_from_the_workflows_layer(tmp_path):
    run_dir = _run(tmp_path, RunOptions(loss="focal", seed=3, overwrite=True))
    assert saved_options(run_dir.path) == RunOptions(loss="focal", seed=3, overwrite=True)
    resumed = resume_options(run_dir.path, post="tta")
    assert resumed.out == run_dir.path and not resumed.overwrite and resumed.post == "tta"
    again = from_run_options(run_dir.path, post="tta")
    assert again.from_run == str(run_dir.path) and again.out is None and again.loss == "focal"
    bare = RunDir(tmp_path / "bare", check=False)
    bare.write_config(RunConfig(status="training"))
    with pytest.raises(CxrltError, match="its 'options' are missing"):
        saved_options(bare.path)


# ---- the tables --------------------------------------------------------------------------------


def test_skipped_and_classes_tables_round_trip(tmp_path):
    run_dir = RunDir(tmp_path / "run", check=False)
    assert run_dir.read_skipped() is None
    skipped = pd.DataFrame({"ImageID": ["001"], "line": [2], "problem": ["label 'x'"]})
    run_dir.write_skipped(skipped)
    pd.testing.assert_frame_equal(run_dir.read_skipped(), skipped)  # "001" stays text
    classes = pd.DataFrame(
        [("Mass", "Mass", "same name", ""), ("", "Hernia", "data set only", "")],
        columns=list(CLASSES_COLUMNS),
    )
    run_dir.write_classes(classes)
    pd.testing.assert_frame_equal(run_dir.read_classes(), classes)  # empty cells stay ""


@pytest.mark.parametrize(
    ("name", "columns", "read"),
    [
        (SKIPPED, SKIPPED_COLUMNS, RunDir.read_skipped),
        (CLASSES, CLASSES_COLUMNS, RunDir.read_classes),
        (PER_CLASS, ("class", *PER_CLASS_COLUMNS), RunDir.read_per_class),
        (LOG, ("epoch",), RunDir.read_log),
    ],
)
def test_a_table_lacking_a_declared_column_is_refused_naming_file_and_column(
    tmp_path, name, columns, read
):
    run_dir = RunDir(tmp_path, check=False)
    others = {c: ["1"] for c in columns[1:]} or {"train_loss": ["0.5"]}
    pd.DataFrame(others).to_csv(run_dir.file(name), index=False)
    with pytest.raises(CxrltError) as error:
        read(run_dir)
    text = str(error.value)
    assert str(run_dir.file(name)) in text and f"lacks the column {columns[0]}" in text


def test_writing_a_table_without_its_columns_is_refused(tmp_path):
    run_dir = RunDir(tmp_path, check=False)
    with pytest.raises(CxrltError, match="lacks the column problem"):
        run_dir.write_skipped(pd.DataFrame({"ImageID": ["a"], "line": [2]}))
    assert not run_dir.file(SKIPPED).exists()


def test_the_metrics_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 3)) < 0.4).astype(int)
    probs = np.clip(targets * 0.5 + rng.random((40, 3)) * 0.5, 0, 1)
    report = evaluate(probs, targets, list(CLASSES_))
    run_dir = RunDir(tmp_path, check=False)
    run_dir.write_metrics(report, {"protocol": "all"})
    metrics = run_dir.read_metrics()
    assert metrics["mAP"] == pytest.approx(report.overall["mAP"])
    assert metrics["selection"] == {"protocol": "all"}
    per_class = run_dir.read_per_class()
    assert list(per_class.index) == list(CLASSES_)
    assert per_class["AP"].to_numpy() == pytest.approx(report.per_class["AP"].to_numpy())


@pytest.mark.parametrize("content", ["[1, 2]", '{"selection": "all"}'])
def test_metrics_not_as_written_are_refused_naming_the_file(tmp_path, content):
    run_dir = RunDir(tmp_path, check=False)
    run_dir.file(METRICS).write_text(content)
    with pytest.raises(CxrltError, match="does not hold the metrics of a run") as error:
        run_dir.read_metrics()
    assert str(run_dir.file(METRICS)) in str(error.value)


def test_the_calibration_record_is_checked_both_ways(tmp_path):
    run_dir = RunDir(tmp_path, check=False)
    assert run_dir.read_calibration() == {}
    record = {"fitted_on": "all", "calibrator": None, "thresholds": {"spec": "f", "state": {}}}
    run_dir.write_calibration(record)
    assert run_dir.read_calibration() == record
    run_dir.file(CALIBRATION).write_text(json.dumps({**record, "thresholds": {"spec": "f"}}))
    with pytest.raises(CxrltError, match="calibrator and thresholds") as error:
        run_dir.read_calibration()
    assert str(run_dir.file(CALIBRATION)) in str(error.value)
    with pytest.raises(CxrltError, match="calibrator and thresholds"):
        run_dir.write_calibration({**record, "extra": 1})


def test_a_submission_is_read_through_the_run_dir(tmp_path):
    run_dir = RunDir(tmp_path, check=False)
    assert run_dir.read_submission() is None
    run_dir.file(SUBMISSION).write_text("dicom_id,Mass,Nodule\n007,0.25,0.5\n")
    frame = run_dir.read_submission()
    assert frame.iloc[0, 0] == "007" and frame.iloc[0, 1:].tolist() == [0.25, 0.5]
    run_dir.file(SUBMISSION).write_text("dicom_id,Mass\n007,high\n")
    with pytest.raises(CxrltError, match="not an id column followed by probabilities") as error:
        run_dir.read_submission()
    assert str(run_dir.file(SUBMISSION)) in str(error.value)


def test_the_log_counts_its_epochs(tmp_path):
    run_dir = RunDir(tmp_path, check=False)
    assert run_dir.logged_epochs() == 0
    run_dir.file(LOG).write_text("epoch,train_loss\n0,0.5\n1,0.4\n")
    assert run_dir.logged_epochs() == 2
    assert run_dir.read_log()["epoch"].tolist() == [0, 1]
