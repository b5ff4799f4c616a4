"""``cxrlt report`` and ``cxrlt compare`` on run directories written by hand (no training)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.evaluation.metrics import evaluate
from cxrlt.outputs.report import compare_runs, comparison_markdown, read_run

runner = CliRunner()
CLASSES = [f"finding {i}" for i in range(8)]
TRAIN_COUNTS = [5000, 2000, 900, 400, 150, 60, 20, 3]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run(
    path: Path,
    *,
    seed: int = 0,
    loss: str = "bce",
    calibrated: bool = False,
    metrics: dict | None = None,
    n_images: int = 300,
    signal: float = 2.0,
    split: bool = True,
) -> Path:
    """A complete run directory as ``cxrlt run`` leaves it, with labels in ``target:`` columns.

    The last class has no validation positive. ``metrics`` replaces metrics.json's contents
    (by default: the mAP and mAUC only, as runs before ECE and the groups wrote). ``signal``
    separates the positives' logits; the same seed gives the same labels and noise. With
    ``split``, split.csv gives two validation images per patient (and a training image).
    """
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.4, 0.3, 0.2, 0.1, 0.08, 0.05, 0.03, 0.0])
    targets = (rng.random((n_images, len(CLASSES))) < prevalence).astype(int)
    logits = np.round(rng.normal(size=targets.shape) + signal * targets - 1, 1)  # ties
    probs = 1 / (1 + np.exp(-logits))
    columns = {"ImageID": [f"img{i}.png" for i in range(n_images)]}
    tables = {"target": targets, "logit": logits, "prob": probs}
    if calibrated:
        tables["calibrated"] = 1 / (1 + np.exp(-logits / 2))
    for prefix, values in tables.items():
        columns |= {f"{prefix}:{c}": values[:, i] for i, c in enumerate(CLASSES)}
    path.mkdir(parents=True)
    pd.DataFrame(columns).to_csv(path / "valid_predictions.csv", index=False)
    if split:
        ids = [*columns["ImageID"], "train0.png"]
        patients = [f"P{i // 2}" for i in range(n_images)] + ["P-train"]
        sides = ["valid"] * n_images + ["train"]
        table = {"ImageID": ids[::-1], "PatientID": patients[::-1], "split": sides[::-1]}
        pd.DataFrame(table).to_csv(path / "split.csv", index=False)  # another order on purpose
    config = {
        "status": "complete",
        "options": {"loss": loss, "arch": "resnet18", "epochs": 4},
        "specs": {"arch": {"name": "resnet18"}, "loss": {"name": loss}},
        "data": {"classes": CLASSES, "train_counts": TRAIN_COUNTS},
        "training": {"epochs_done": 4},
    }
    (path / "config.json").write_text(json.dumps(config))
    metrics = {"mAP": 0.5 + seed / 10, "mAUC": 0.8} if metrics is None else metrics
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def invoke(*args: object):
    """The CLI on a terminal wide enough for the whole table (rich wraps cells otherwise)."""
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def test_read_run_gives_back_what_was_written(tmp_path):
    results = read_run(make_run(tmp_path / "run", calibrated=True))
    assert results.classes == CLASSES
    assert list(results.train_counts) == TRAIN_COUNTS
    assert results.targets.shape == results.logits.shape == (300, 8)
    assert sorted(results.probs) == ["calibrated", "prob"]


def test_report_prints_the_table_groups_and_bounds_and_writes_three_pngs(tmp_path):
    run = make_run(tmp_path / "run", calibrated=True)
    result = invoke("report", run, "--groups", "bounds", "--bounds", "100,1000")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "head > 1000 (2 classes); medium 100–1000 (3 classes); tail < 100 (3 classes)" in text
    assert all(line in text for line in ("head mAP", "medium mAP", "tail mAP"))
    assert "finding 7" in text and "Left out of the means" in text
    assert "ECE before calibration" in text
    results = read_run(run)
    final, before = (
        evaluate(results.probs[kind], results.targets, CLASSES, scores=results.logits).overall
        for kind in ("calibrated", "prob")
    )
    # The headline is the run's own figures (its calibrated probabilities), as metrics.json.
    assert f"mAP {final['mAP']:.3f}" in text and f"ECE {final['ECE']:.3f}" in text
    assert f"Before calibration: mF1@0.5 {before['mF1']:.3f}, ECE {before['ECE']:.3f}" in text
    for name in ("ap_by_train_count", "precision_recall", "reliability"):
        data = (run / "plots" / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name


def test_report_writes_to_out_and_draws_the_chosen_classes(tmp_path):
    run = make_run(tmp_path / "run")
    result = invoke("report", run, "--classes", "finding 0, finding 6", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "precision_recall.png").stat().st_size > 5000
    assert not (run / "plots").exists()


@pytest.mark.parametrize(
    "classes, fragment",
    [("finding 0,nope", "Unknown class 'nope'"), ("finding 7", "No validation positives")],
)
def test_report_refuses_unknown_or_unscored_classes(tmp_path, classes, fragment):
    result = invoke("report", make_run(tmp_path / "run"), "--classes", classes)
    assert result.exit_code == 2
    assert fragment in " ".join(result.output.split())


@pytest.mark.parametrize("missing", ["config.json", "valid_predictions.csv"])
def test_report_names_the_folder_and_the_missing_file(tmp_path, missing):
    run = make_run(tmp_path / "run")
    (run / missing).unlink()
    result = invoke("report", run)
    assert result.exit_code == 2
    text = "".join(result.output.split())  # rich wraps long paths anywhere
    assert f"{run}isnotacompleterun:{missing}ismissing".replace(" ", "") in text
    assert "Traceback" not in result.output


def test_report_names_missing_prediction_columns(tmp_path):
    run = make_run(tmp_path / "run")
    file = run / "valid_predictions.csv"
    frame = pd.read_csv(file)
    frame.drop(columns=[c for c in frame.columns if c.startswith("target:")]).to_csv(file)
    result = invoke("report", run)
    assert result.exit_code == 2
    assert "lacks the columns target:finding 0" in " ".join(result.output.split())


def test_report_refuses_bad_bounds(tmp_path):
    result = invoke("report", make_run(tmp_path / "run"), "--groups", "bounds", "--bounds", "9")
    assert result.exit_code == 2 and "--bounds takes two whole numbers" in result.output


def test_compare_writes_csv_and_markdown_and_recomputes_what_metrics_lack(tmp_path):
    full = {
        "mAP": 0.61,
        "mAUC": 0.9,
        "mF1": 0.4,
        "ECE": 0.05,
        "mAP_head": 0.8,
        "mAP_medium": 0.6,
        "mAP_tail": 0.3,
        "groups": "hand-written groups",
    }
    first = make_run(tmp_path / "a", metrics=full, loss="asl")
    second = make_run(tmp_path / "b", seed=1, loss="ldam-drw")  # lacks ECE and the groups
    out = tmp_path / "cmp" / "table"
    result = invoke("compare", first, second, "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out.with_suffix(".csv"))
    assert table["run"].tolist() == ["a", "b"]
    assert table["loss"].tolist() == ["asl", "ldam-drw"]
    assert table.loc[0, ["mAP", "ECE", "mAP_tail"]].tolist() == [0.61, 0.05, 0.3]
    assert table.loc[1, "mAP"] == 0.6  # from metrics.json, not recomputed
    recomputed = read_run(second).evaluate().overall
    assert table.loc[1, "ECE"] == pytest.approx(recomputed["ECE"])
    assert table.loc[1, "mAP_head"] == pytest.approx(recomputed["mAP_head"])
    assert "equal thirds" in table.loc[1, "groups"]
    markdown = out.with_suffix(".md").read_text()
    assert "| run | loss | arch | epochs | select | mAP |" in markdown
    low, high = read_run(first).evaluate().intervals.overall["mAP"]  # recomputed: not in metrics
    assert f"| a | asl | resnet18 | 4 | best | 0.610 [{low:.3f}, {high:.3f}] |" in markdown
    assert "Groups of a: hand-written groups" in markdown
    assert "ldam-drw" in result.output


def test_compare_notes_metrics_it_cannot_recompute(tmp_path):
    run = make_run(tmp_path / "old")
    (run / "valid_predictions.csv").unlink()
    frame, notes = compare_runs([run])
    assert np.isnan(frame.loc[0, "ECE"]) and frame.loc[0, "mAP"] == 0.5
    assert len(notes) == 1 and notes[0].startswith("old: mF1, ECE") and "missing" in notes[0]


def test_compare_names_the_run_without_metrics(tmp_path):
    good = make_run(tmp_path / "good")
    bad = make_run(tmp_path / "bad")
    (bad / "metrics.json").unlink()
    result = invoke("compare", good, bad, "--out", tmp_path / "x")
    assert result.exit_code == 2
    text = "".join(result.output.split())
    assert f"{bad}isnotacompleterun:metrics.jsonismissing" in text
    assert not (tmp_path / "x.csv").exists()


def test_same_folder_names_are_told_apart_by_their_paths(tmp_path):
    runs = [make_run(tmp_path / side / "run") for side in ("left", "right")]
    frame, _ = compare_runs(runs)
    assert frame["run"].tolist() == [str(r) for r in runs]


def test_help_does_not_import_matplotlib_or_torch():
    code = (
        "import sys\nsys.argv = ['cxrlt', 'report', '--help']\nfrom cxrlt.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('matplotlib', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Score a run again" in out.stdout
    assert out.stdout.strip().endswith("LOADED []")


def test_report_of_a_path_that_is_no_folder(tmp_path):
    result = invoke("report", tmp_path / "nowhere")
    assert result.exit_code == 2 and "is not a folder" in result.output


def test_compare_refuses_a_broken_metrics_file(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "metrics.json").write_text("{mAP: ")
    result = invoke("compare", run, "--out", tmp_path / "x")
    assert result.exit_code == 2 and "cannot be read as JSON" in " ".join(result.output.split())


def test_f1_of_the_final_probabilities_uses_the_runs_own_predictions(tmp_path):
    from sklearn.metrics import f1_score

    from cxrlt.outputs.report import read_run

    run = make_run(tmp_path / "run", calibrated=True)
    frame = pd.read_csv(run / "valid_predictions.csv")
    predicted = (frame[[f"calibrated:{c}" for c in CLASSES]].to_numpy() > 0.3).astype(int)
    for i, c in enumerate(CLASSES):
        frame[f"predicted:{c}"] = predicted[:, i]
    frame.to_csv(run / "valid_predictions.csv", index=False)
    results = read_run(run)
    report = results.evaluate("calibrated")
    targets = frame[[f"target:{c}" for c in CLASSES]].to_numpy()
    expected = [f1_score(targets[:, i], predicted[:, i]) for i in range(len(CLASSES) - 1)]
    assert report.per_class["F1"].iloc[:-1].tolist() == pytest.approx(expected)
    assert results.evaluate("prob").per_class["threshold"].eq(0.5).all()


def test_report_gives_intervals_over_the_patients_of_split_csv(tmp_path):
    run = make_run(tmp_path / "run")
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    described = "95% intervals: percentile bootstrap over patients, 1,000 resamples of 150 patients"
    assert described in text
    results = read_run(run)
    assert results.patients[:4].tolist() == ["P0", "P0", "P1", "P1"]
    report = evaluate(
        results.probs["prob"],
        results.targets,
        CLASSES,
        scores=results.logits,
        train_counts=TRAIN_COUNTS,
        patients=results.patients,
    )
    low, high = report.intervals.overall["mAP"]
    assert f"mAP {report.overall['mAP']:.3f} [{low:.3f}, {high:.3f}]" in text
    low, high = report.intervals.overall["mF1_tail"]
    assert f"mF1 {report.overall['mF1_tail']:.3f} [{low:.3f}, {high:.3f}]" in text
    row = report.per_class.loc["finding 0"]
    low, high = report.intervals.per_class.loc["finding 0", ["AUC_low", "AUC_high"]]
    assert f"{row.AUC:.3f} [{low:.3f}, {high:.3f}]" in text
    assert "split.csv is missing" not in text


def test_report_without_split_csv_counts_each_image_as_a_patient(tmp_path):
    result = invoke("report", make_run(tmp_path / "run", split=False))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1,000 resamples of 300 patients" in text
    assert "split.csv is missing: each image counted as its own patient" in text


def test_report_names_a_split_csv_that_lacks_the_validation_images(tmp_path):
    run = make_run(tmp_path / "run")
    split = pd.read_csv(run / "split.csv")
    split[split["ImageID"] != "img7.png"].to_csv(run / "split.csv", index=False)
    result = invoke("report", run)
    assert result.exit_code == 2
    text = "".join(result.output.split())
    assert "hasnopatientfor1ofthe300imagesinvalid_predictions.csv(first:img7.png)" in text
    assert "orremoveittocounteachimageasitsownpatient" in text


def test_compare_gives_paired_differences_from_the_first_run_on_the_same_images(tmp_path):
    first = make_run(tmp_path / "a")
    same = make_run(tmp_path / "b", seed=0, signal=2.0)  # the very same predictions
    better = make_run(tmp_path / "c", seed=0, signal=4.0)  # same labels, sharper logits
    other_images = make_run(tmp_path / "d", n_images=200)
    out = tmp_path / "cmp"
    result = invoke("compare", first, same, better, other_images, "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out.with_suffix(".csv")).set_index("run")
    assert np.isnan(table.loc["a", "mAP_diff"]) and np.isnan(table.loc["d", "mAP_diff"])
    assert table.loc["b", ["mAP_diff", "mAP_diff_low", "mAP_diff_high"]].tolist() == [0, 0, 0]
    assert table.loc["b", "mAP_p"] == 1
    a, c = read_run(first).evaluate("prob"), read_run(better).evaluate("prob")
    draws = c.intervals.resampled.overall["mAP"] - a.intervals.resampled.overall["mAP"]
    assert table.loc["c", "mAP_diff"] == pytest.approx(c.overall["mAP"] - a.overall["mAP"])
    assert table.loc["c", "mAP_diff_low"] == pytest.approx(np.percentile(draws, 2.5))
    assert table.loc["c", "mAP_p"] == 0.001 and table.loc["c", "paired_with"] == "a"
    text = " ".join(result.output.split())
    assert "Paired differences from a" in text and "< 0.001" in text
    assert "d: no paired test against a: it was scored on other images" in text
    markdown = out.with_suffix(".md").read_text()
    assert "| run | ΔmAP | p mAP | ΔmAUC |" in markdown
    assert "| b | +0.000 [+0.000, +0.000] | 1.000 |" in markdown


def test_compare_takes_the_intervals_metrics_json_holds(tmp_path):
    metrics = {key: 0.5 for key in ("mAP", "mAUC", "mF1", "ECE")}
    metrics |= {f"mAP_{g}": 0.5 for g in ("head", "medium", "tail")}
    metrics |= {f"{key}_ci": [0.4, 0.6] for key in metrics}
    metrics["groups"] = "hand-written groups"
    run = make_run(tmp_path / "a", metrics=metrics)
    (run / "valid_predictions.csv").unlink()  # nothing to recompute from
    frame, notes = compare_runs([run])
    assert frame.loc[0, ["mAP_low", "mAP_high", "mAP_tail_high"]].tolist() == [0.4, 0.6, 0.6]
    assert "0.500 [0.400, 0.600]" in comparison_markdown(frame, notes)


def test_classes_without_training_positives_are_listed_by_name_not_grouped(tmp_path):
    run = make_run(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["data"]["train_counts"] = [5000, 0, 900, 400, 0, 60, 20, 3]
    (run / "config.json").write_text(json.dumps(config))
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1]
        for line in result.output.splitlines()
        if (cells := [c.strip() for c in line.split("│")[1:-1]]) and cells[0] in CLASSES
    }
    assert [c for c, group in rows.items() if group == "none"] == ["finding 1", "finding 4"]
    assert rows["finding 0"] == "head"
    text = " ".join(result.output.split())
    assert "none no training positives, left out of the group means: finding 1, finding 4" in text
    assert "2 classes without training positives" in text and "(finding 1, finding 4)" in text
    report = read_run(run).evaluate(intervals=False)
    head = report.groups.members("head")
    assert "finding 1" not in head and "finding 4" not in head
    assert report.overall["mAP_head"] == pytest.approx(report.per_class.loc[head, "AP"].mean())
    frame, _ = compare_runs([run], intervals=False)
    assert "(finding 1, finding 4)" in frame.loc[0, "groups"]


class ToyData(list):
    """A data set as the summary reads it: its rows, name, labels, warnings and notes."""

    name, warnings, notes = "toy", [], []
    labels = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [1, 0, 0]])


def test_data_summary_names_the_classes_without_training_positives():
    from types import SimpleNamespace

    from rich.console import Console

    from cxrlt.outputs.report import print_data_summary

    dls = SimpleNamespace(
        data=ToyData(range(4)),
        class_counts=np.array([2, 0, 1]),  # 'b' has its only positive in validation
        classes=["a", "b", "c"],
        n_train=3,
        is_valid=np.array([False, False, True, False]),
        skipped=pd.DataFrame(columns=["ImageID"]),
    )
    console = Console(file=io.StringIO(), width=300)
    print_data_summary(console, dls)
    text = console.file.getvalue()
    assert "1 class has no training positives (b)" in text
    assert "group 'none', outside head / medium / tail" in text
