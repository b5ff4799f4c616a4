"""``cxrlt evaluate``: a run scored on another labelled data set whose class list differs in
spelling, synonyms, missing and extra classes; class names matched through the synonym table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.labels import CXR_LT_2024_CLASSES, CXR_LT_2026_CLASSES
from cxrlt.data.synonyms import match_classes, normalise
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import evaluate
from cxrlt.pytest_plugin import TINY_DATA

POST = "temp-scale,f1-per-class:min_positives=2"
OTHER = "csv:patient_column=PatientID"
# How the other data set names some of the run's classes, and what it lacks or adds.
RENAMED = {
    "pneumoperitoneo": "Pneumoperitoneum",  # synonym (PadChest's Spanish term)
    "pleural effusion": "Effusion",  # synonym (NIH)
    "Normal": "No Finding",  # synonym (MIMIC, NIH)
    "Support Devices": "support_devices",  # spelling
    "Subcutaneous Emphysema": "subcutaneous-emphysema",  # spelling
    "aortic atheromatosis": "Calcification of the Aorta",  # related, never matched
}
DROPPED = ("aortic elongation", "Kyphosis")
EXTRA = "Tuberculosis"
RUN_ONLY = {"aortic elongation", "Kyphosis", "aortic atheromatosis"}
DATA_ONLY = {"Calcification of the Aorta", EXTRA}
MISSING = "images/missing.png"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def flat(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny run with a calibrator and per-class thresholds."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    args = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32"]
    result = invoke("run", *args, "--post", POST, "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> Path:
    """A second hospital: other synthetic images, in a ``csv`` data set whose label columns
    are renamed, dropped, reordered and extended."""
    from cxrlt.data.embedded import synthetic_dataset

    source = synthetic_dataset(n_images=80, size=32, seed=7)
    folder = tmp_path_factory.mktemp("other")
    (folder / "images").mkdir()
    for path in source.paths:
        shutil.copy(path, folder / "images" / path.name)
    labels = source.frame[list(CXR_LT_2026_CLASSES)].drop(columns=list(DROPPED))
    labels = labels.rename(columns=RENAMED).iloc[:, ::-1]
    labels[EXTRA] = np.random.default_rng(0).integers(0, 2, len(labels))
    meta = pd.DataFrame(
        {"path": [f"images/{p.name}" for p in source.paths], "PatientID": source.patients}
    )
    table = pd.concat([meta, labels], axis=1)
    missing = table.iloc[:1].assign(path=MISSING)  # a bad row, left out with --skip-bad
    pd.concat([table, missing]).to_csv(folder / "labels.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def evaluated(run, other, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluations") / "tiny-on-other"
    result = invoke(
        "evaluate", str(run), "--dataset", OTHER, "--data", str(other), "--out", str(out),
        "--device", "cpu", "--skip-bad",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, flat(result)


@pytest.fixture(scope="module")
def direct(run, other):
    """The run's predictions on the other images, computed without ``cxrlt evaluate``."""
    from cxrlt.data.cache import prepare_images
    from cxrlt.prediction import load_run

    frame = pd.read_csv(other / "labels.csv").query("path != @MISSING")
    trained = load_run(run)
    pixels = prepare_images([other / p for p in frame["path"]], trained.size).images
    logits = trained.logits(pixels)
    calibration = json.loads((run / "calibration.json").read_text())
    thresholds = np.array(calibration["thresholds"]["state"]["thresholds"])
    shared = [c for c in CXR_LT_2026_CLASSES if c not in RUN_ONLY]
    columns = [CXR_LT_2026_CLASSES.index(c) for c in shared]
    targets = frame[[RENAMED.get(c, c) for c in shared]].to_numpy()
    return shared, columns, targets, logits, trained.probabilities(logits), thresholds


def test_names_are_normalised_then_mapped_through_true_synonyms_only():
    assert (
        normalise("  Pleural_Thickening ")
        == normalise("pleural-thickening")
        == ("pleural thickening")
    )
    pairs = dict(match_classes(CXR_LT_2026_CLASSES, CXR_LT_2024_CLASSES).pairs)
    assert pairs["pneumoperitoneo"] == "Pneumoperitoneum"
    assert pairs["pleural effusion"] == "Pleural Effusion"
    assert pairs["azygos lobe"] == "Azygos Lobe"
    assert "aortic atheromatosis" not in pairs and "aortic elongation" not in pairs
    nih = ["Effusion", "Pleural_Thickening", "No Finding", "Infiltration", "Cardiomegaly"]
    match = match_classes(CXR_LT_2026_CLASSES, nih)
    assert dict(match.pairs) == {
        "Normal": "No Finding",
        "cardiomegaly": "Cardiomegaly",
        "pleural effusion": "Effusion",
        "pleural thickening": "Pleural_Thickening",
    }
    assert match.data_only == ("Infiltration",)
    note = match.table().set_index("dataset_class").loc["Infiltration", "note"]
    assert "interstitial pattern" in note  # the documented reason it is not matched


def test_two_names_of_one_finding_on_one_side_stop_the_matching():
    with pytest.raises(CxrltError, match="'Effusion' and 'Pleural Effusion'"):
        match_classes(["Normal"], ["Effusion", "Pleural Effusion"])


def test_the_cli_prints_the_synonym_table():  # the site's copy is generated: test_docs.py
    result = invoke("evaluate", "--synonyms")
    assert result.exit_code == 0 and "| Pneumoperitoneum | pneumoperitoneo |" in result.output
    assert "--synonyms" in invoke("evaluate", "--help").output


@pytest.mark.slow  # trains a tiny run once for the module
def test_shared_classes_are_matched_and_the_unmatched_listed(evaluated):
    out, output = evaluated
    table = pd.read_csv(out / "classes.csv", keep_default_na=False)
    pairs = table[~table["match"].isin(["run only", "data set only"])]
    assert len(pairs) == 30 - len(RUN_ONLY)
    how = dict(zip(pairs["run_class"], pairs["match"], strict=True))
    named = dict(zip(pairs["run_class"], pairs["dataset_class"], strict=True))
    for run_class, data_class in RENAMED.items():
        if run_class not in RUN_ONLY:
            assert named[run_class] == data_class
    assert {how[c] for c in ("pneumoperitoneo", "pleural effusion", "Normal")} == {"synonym"}
    assert how["Support Devices"] == how["Subcutaneous Emphysema"] == "spelling"
    assert set(table.loc[table["match"] == "run only", "run_class"]) == RUN_ONLY
    assert set(table.loc[table["match"] == "data set only", "dataset_class"]) == DATA_ONLY
    assert "The run's classes with no match: aortic elongation, aortic atheromatosis, Kyphosis" in (
        output
    )
    assert "The data set's classes with no match:" in output and EXTRA in output
    assert "80 labelled images" in output and "1 bad row skipped" in output
    assert pd.read_csv(out / "skipped.csv")["problem"].str.contains("missing").all()


@pytest.mark.slow  # trains a tiny run once for the module
def test_the_metrics_are_those_of_evaluate_on_the_shared_classes(evaluated, direct):
    out, _ = evaluated
    shared, columns, targets, logits, probs, thresholds = direct
    expected = evaluate(
        probs[:, columns],
        targets,
        shared,
        threshold=thresholds[columns],
        scores=logits[:, columns],
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mAP", "mAUC", "mF1", "ECE", "n_images", "n_classes_scored"):
        assert metrics[key] == pytest.approx(expected.overall[key], abs=1e-6), key
    per_class = pd.read_csv(out / "metrics_per_class.csv", index_col="class")
    assert list(per_class.index) == shared
    assert np.allclose(per_class["AP"], expected.per_class["AP"], atol=1e-6, equal_nan=True)
    predictions = pd.read_csv(out / "valid_predictions.csv")
    assert np.array_equal(predictions[[f"target:{c}" for c in shared]].to_numpy(), targets)


@pytest.mark.slow  # trains a tiny run once for the module
def test_the_results_folder_reads_like_a_run(run, evaluated):
    out, _ = evaluated
    config = json.loads((out / "config.json").read_text())
    assert set(config["evaluation"]["data_only"]) == DATA_ONLY
    assert config["evaluation"]["images"] == 80 and config["data"]["classes"][0] == "Normal"
    result = invoke("compare", str(run), str(out), "--out", str(out / "comparison"))
    assert result.exit_code == 0 and out.name in result.output, result.output
    assert "split.csv is missing" not in flat(result)  # the patients its intervals resampled
    metrics = json.loads((out / "metrics.json").read_text())
    report = invoke("report", str(out), "--out", str(out / "plots"))
    assert f"mAP {metrics['mAP']:.3f} [{metrics['mAP_ci'][0]:.3f}" in flat(report)


@pytest.mark.slow  # trains a tiny run once for the module
def test_an_ensemble_is_scored_as_its_merged_members(run, other, direct, tmp_path):
    from cxrlt.ensemble import ensemble_runs, merge_probabilities

    ensemble_runs([run, run], tmp_path / "ens", weights=[2, 1])
    out = tmp_path / "ens-on-other"
    result = invoke(
        "evaluate", str(tmp_path / "ens"), "--dataset", OTHER, "--data", str(other),
        "--out", str(out), "--device", "cpu", "--skip-bad",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shared, columns, targets, _, probs, _ = direct
    merged, scores = merge_probabilities([probs, probs], [2, 1], "logit")
    expected = evaluate(merged[:, columns], targets, shared, scores=scores[:, columns])
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mAP", "mF1", "ECE"):
        assert metrics[key] == pytest.approx(expected.overall[key], abs=1e-6), key


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A run folder as complete as the checks need: bad input never gets to its weights."""
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    config = {
        "status": "complete",
        "options": {"dataset": TINY_DATA, "data": None},
        "data": {"classes": list(CXR_LT_2026_CLASSES), "train_counts": [5] * 30},
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_bad_input_is_refused_before_decoding(fake_run, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("images were decoded before the input was checked")

    monkeypatch.setattr("cxrlt.prediction.decode_into_cache", refuse)
    other = tmp_path / "other"
    other.mkdir()
    pd.DataFrame({"path": ["a.png"], "Granuloma": [1], "Bulla": [0]}).to_csv(
        other / "labels.csv", index=False
    )
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text('{"status": "training"}')
    run = str(fake_run)
    cases = {
        "holds no run": [str(tmp_path / "missing"), "--dataset", "csv", "--data", str(other)],
        "not a complete run": [str(tmp_path / "unfinished"), "--dataset", "csv"],
        "Unknown dataset 'nosuch'": [run, "--dataset", "nosuch"],
        "needs --data PATH": [run, "--dataset", "csv"],
        "share no finding": [run, "--dataset", "csv", "--data", str(other)],
        "was trained on": [run, "--dataset", TINY_DATA],
    }
    for message, args in cases.items():
        result = invoke("evaluate", "--out", str(tmp_path / "out"), "--device", "cpu", *args)
        assert result.exit_code == 2, (message, result.output)
        assert message in flat(result), (message, result.output)
    pd.DataFrame({"path": ["a.png"], "Effusion": [1]}).to_csv(other / "labels.csv", index=False)
    result = invoke("evaluate", run, "--dataset", "csv", "--data", str(other), "--out", run)
    assert result.exit_code == 2 and "the run's own folder" in flat(result), result.output
    result = invoke("evaluate", run, "--dataset", "csv", "--data", str(other))
    assert result.exit_code == 2 and "image file missing" in flat(result), result.output
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text('{"cxrlt_version": "0.1"}')
    result = invoke(
        "evaluate", run, "--dataset", "csv", "--data", str(other), "--out", str(tmp_path / "out")
    )
    assert result.exit_code == 2 and "already holds a run" in flat(result), result.output


@pytest.mark.slow
def test_images_the_run_saw_are_left_out_and_counted(run, other, tmp_path):
    """A second data set that shares images with the run's own (a csv copy of the training
    data) is scored on the images the run never saw."""
    from cxrlt.registry import resolve

    folder = tmp_path / "overlap"
    shutil.copytree(other, folder)
    table = pd.read_csv(folder / "labels.csv").query("path != @MISSING")
    seen = resolve("datasets", TINY_DATA).build().paths[:5]
    for path in seen:
        shutil.copy(path, folder / "images" / path.name)
    copies = table.iloc[:5].assign(path=[f"images/{p.name}" for p in seen])
    pd.concat([table, copies]).to_csv(folder / "labels.csv", index=False)
    out = tmp_path / "scored"
    result = invoke(
        "evaluate", str(run), "--dataset", OTHER, "--data", str(folder), "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{len(table)} labelled images" in flat(result)
    assert "5 images the run trained or validated on left out" in flat(result)
    config = json.loads((out / "config.json").read_text())
    assert config["evaluation"]["left_out_seen_by_run"] == 5
