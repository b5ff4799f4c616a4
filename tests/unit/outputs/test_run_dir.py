"""The run directory's schema: config.json typed and versioned, valid_predictions.csv's columns
declared once, and the commands that read runs working through it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrlt.errors import CxrltError
from cxrlt.options import RunOptions
from cxrlt.outputs.run_dir import CONFIG, PREDICTIONS, RunDir
from cxrlt.outputs.run_schema import (
    COMPLETE,
    SCHEMA_VERSION,
    DataRecord,
    DistributedRecord,
    EnsembleRecord,
    EnvironmentRecord,
    EvaluationRecord,
    RunConfig,
    SelectionRecord,
    SpecRecord,
    TrainingRecord,
    class_columns,
)

CLASSES = ("Mass", "Nodule", "Pleural Effusion")


def full_config() -> RunConfig:
    """A config with every section filled, as no single command writes it."""
    arch = SpecRecord("resnet18", "resnet18:pretrained=False", {"pretrained": False}, "builtins")
    return RunConfig(
        cxrlt_version="1.2.3",
        created="2026-01-02T03:04:05",
        status=COMPLETE,
        options=RunOptions(dataset="synthetic", size=32),
        specs={"arch": arch, "loss": SpecRecord("bce", "bce")},
        post=(SpecRecord("crt", "crt:epochs=2", {"epochs": 2}),),
        data=DataRecord(CLASSES, (40, 7, 1), n_train=100, n_valid=30, provenance={"source": "x"}),
        environment=EnvironmentRecord("3.11.7", "2.5.0", "cpu"),
        training=TrainingRecord(3, 2, 0.41, {"mAP": {"epoch": 2, "value": 0.41}}, 2, "runs/a"),
        selection=SelectionRecord(
            "cross-fit", {"kept": 2, "half0": 3}, {"kept": "model.safetensors"}, {}, "chosen"
        ),
        distributed=DistributedRecord(2, (1.5, 1.5)),
        ensemble=EnsembleRecord(("/runs/a", "/runs/b"), "logit", (1.0, 2.0)),
        evaluation=EvaluationRecord("/runs/a", "nih", "/data", 80, "every image", 1, 5, ("Mass",)),
    )


def test_every_section_round_trips_through_config_json(tmp_path):
    config = full_config()
    run_dir = RunDir(tmp_path / "run", check=False)
    run_dir.write_config(config)
    written = json.loads((tmp_path / "run" / CONFIG).read_text())
    assert next(iter(written)) == "schema_version" and written["schema_version"] == SCHEMA_VERSION
    assert written["data"]["classes"] == list(CLASSES)  # JSON lists, not tuples as text
    assert run_dir.read_config() == config


def test_a_dict_is_checked_and_its_numbers_made_plain(tmp_path):
    """What the pipeline passes (numpy counts, lists) is written as the typed config."""
    run_dir = RunDir(tmp_path / "run", check=False)
    raw = {
        "status": "training",
        "options": {"size": 32},
        "data": {"classes": list(CLASSES), "train_counts": np.array([4, 2, 0]).tolist()},
        "training": TrainingRecord(epochs_done=np.int64(2)),
    }
    raw["data"]["n_train"] = np.int64(6)
    run_dir.write_config(raw)
    written = json.loads(run_dir.file(CONFIG).read_text())
    assert written["data"]["n_train"] == 6 and written["training"] == {"epochs_done": 2}
    config = run_dir.read_config()
    assert config.data.train_counts == (4, 2, 0) and config.status == "training"
    assert config.ensemble is None and config.post == ()


def test_a_config_from_before_the_schema_version_is_read_as_version_1(tmp_path):
    old = {
        "cxrlt_version": "0.1.0",
        "status": "complete",
        "options": {"loss": "bce"},
        "specs": {"arch": {"name": "resnet18"}},
        "data": {"classes": list(CLASSES), "train_counts": [3, 2, 1]},
        "training": {"epochs_done": 4},
    }
    (tmp_path / CONFIG).write_text(json.dumps(old))
    config = RunDir(tmp_path, check=False).read_config()
    assert config.schema_version == 1
    assert config.specs["arch"].name == "resnet18" and config.training.epochs_done == 4
    assert config.data.classes == CLASSES


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, "1"])
def test_another_schema_version_is_refused_naming_both(tmp_path, version):
    (tmp_path / CONFIG).write_text(json.dumps({"schema_version": version, "cxrlt_version": "9.0"}))
    with pytest.raises(CxrltError) as error:
        RunDir(tmp_path, check=False).read_config()
    message = str(error.value)
    assert error.value.exit_code == 2
    assert str(tmp_path / CONFIG) in message and f"schema version {version!r}" in message
    assert f"reads version {SCHEMA_VERSION}" in message and "cxrlt 9.0" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"architectures": ["BertModel"]}, "unknown key 'architectures'"),
        ({"data": {"classes": ["a"], "train_counts": ["many"]}}, "config.data.train_counts[0]"),
        ({"data": {"classes": ["a", "b"], "train_counts": [1]}}, "2 classes but 1 train_counts"),
        ({"data": {"classes": ["a"]}}, "config.data lacks 'train_counts'"),
        ({"ensemble": {"members": "a", "merge": "logit", "weights": []}}, "is not a list"),
        ([1, 2], "config is not an object"),
    ],
)
def test_a_config_that_does_not_fit_the_schema_names_the_file_and_key(tmp_path, raw, fragment):
    (tmp_path / CONFIG).write_text(json.dumps(raw))
    with pytest.raises(CxrltError) as error:
        RunDir(tmp_path, check=False).read_config()
    assert str(tmp_path / CONFIG) in str(error.value) and fragment in str(error.value)
    assert "give the folder of a cxrlt run" in str(error.value)


def test_a_missing_section_is_named_with_its_file(tmp_path):
    config = RunConfig(status="training")
    with pytest.raises(CxrltError, match=r"x/config.json has no 'data' section"):
        config.required("data", Path("x") / CONFIG)
    assert full_config().required("data", "unused").classes == CLASSES


@pytest.mark.parametrize("optional", [True, False])
def test_predictions_round_trip_bit_for_bit(tmp_path, optional):
    rng = np.random.default_rng(0)
    shape = (7, len(CLASSES))
    targets = (rng.random(shape) < 0.3).astype(int)
    logits = rng.normal(size=shape)
    probs = 1 / (1 + np.exp(-logits))
    calibrated, predicted = (probs**2, probs > 0.4) if optional else (None, None)
    ids = [f"p{i}/img {i}.png" for i in range(7)]
    run_dir = RunDir(tmp_path, check=False)
    run_dir.write_predictions(ids, CLASSES, targets, logits, probs, calibrated, predicted)
    read = run_dir.read_predictions(CLASSES)
    assert list(read.image_ids) == ids
    assert np.array_equal(read.targets, targets) and np.array_equal(read.logits, logits)
    assert np.array_equal(read.probs, probs)  # the exact floats, not rounded ones
    if optional:
        assert np.array_equal(read.calibrated, calibrated)
        assert np.array_equal(read.predicted, predicted.astype(int))
    else:
        assert read.calibrated is None and read.predicted is None
    header = (tmp_path / PREDICTIONS).read_text().splitlines()[0].split(",")
    assert header[1 : 1 + len(CLASSES)] == class_columns("target", CLASSES)


def test_predictions_read_for_other_classes_name_the_missing_columns(tmp_path):
    run_dir = RunDir(tmp_path, check=False)
    zeros = np.zeros((2, len(CLASSES)))
    run_dir.write_predictions(["a", "b"], CLASSES, zeros, zeros, zeros)
    with pytest.raises(CxrltError, match="lacks the columns target:Atelectasis"):
        run_dir.read_predictions(["Atelectasis", *CLASSES])


def test_a_split_without_patients_is_refused_with_the_callers_fix(tmp_path):
    run_dir = RunDir(tmp_path, check=False)
    assert run_dir.read_split("unused") is None
    (tmp_path / "split.csv").write_text("ImageID,split\na.png,valid\n")
    with pytest.raises(CxrltError, match="lacks the columns ImageID and PatientID: do this"):
        run_dir.read_split("do this")


# ---- a tiny run written through the schema, read by report, compare and predict ---------------


@pytest.fixture(scope="module")
def tiny_run(cxrlt_tiny_dls, cxrlt_trained, tmp_path_factory) -> tuple[Path, np.ndarray, object]:
    """A run folder written by hand through RunDir from the shared one-epoch weights: its
    config (resolved specs), weights, split, predictions and metrics; and the logits and
    images table it was scored on."""
    dls, trained = cxrlt_tiny_dls, cxrlt_trained
    from cxrlt.evaluation.metrics import evaluate
    from cxrlt.prediction import NEW_IMAGES, decode_test_images, predict_logits
    from cxrlt.training.learner import cxr_learner

    learn = cxr_learner(dls, "resnet18", "bce", pretrained=False)
    learn.model.load_state_dict(trained)
    valid = dls.data.frame[dls.is_valid][["ImageID", "path"]].reset_index(drop=True)
    images = decode_test_images(valid, 32, letterbox=False, part=NEW_IMAGES)
    logits = predict_logits(learn.model, images, 16, "cpu").astype(np.float64)
    probs = 1 / (1 + np.exp(-logits))
    targets = dls.data.labels[dls.is_valid]
    report = evaluate(probs, targets, dls.classes, scores=logits, train_counts=dls.class_counts)
    run_dir = RunDir(tmp_path_factory.mktemp("tiny") / "run")
    run_dir.start()
    run_dir.write_weights(learn.model)
    run_dir.write_split(dls.split_table())
    run_dir.write_predictions(valid["ImageID"], dls.classes, targets, logits, probs)
    run_dir.write_metrics(report)
    specs = {role: SpecRecord(**r.to_dict()) for role, r in learn.specs.items()}
    run_dir.write_config(
        RunConfig(
            cxrlt_version="test",
            status=COMPLETE,
            options={"dataset": "synthetic", "size": 32, "letterbox": False, "loss": "bce"},
            specs=specs,
            data=DataRecord(tuple(dls.classes), tuple(dls.class_counts.tolist()), dls.n_train),
        )
    )
    return run_dir.path, logits, valid


@pytest.mark.slow
def test_report_compare_and_predict_read_a_tiny_run_through_the_schema(tiny_run):
    from cxrlt.outputs.report import compare_runs, read_run
    from cxrlt.prediction import NEW_IMAGES, load_run

    path, logits, valid = tiny_run
    results = read_run(path)
    assert np.array_equal(results.logits, logits) and results.patient_note == ""
    metrics = json.loads((path / "metrics.json").read_text())
    assert results.evaluate(intervals=False).overall["mAP"] == pytest.approx(metrics["mAP"])
    frame, _ = compare_runs([path, path], intervals=False)
    assert list(frame["loss"]) == ["bce", "bce"] and list(frame["arch"]) == ["resnet18"] * 2
    rebuilt = load_run(path).scores(valid, part=NEW_IMAGES)
    assert np.allclose(rebuilt.logits, logits, atol=1e-5)
