"""The stages of ``cxrlt run``, each alone on tiny inputs: data, calibration, evaluation and
writing (the whole run is tested end to end in test_run.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from cxrlt.errors import CxrltError
from cxrlt.evaluation.selection import KEPT, ROLES
from cxrlt.options import RunOptions
from cxrlt.outputs.run_dir import CALIBRATION, METRICS, PREDICTIONS, RunDir
from cxrlt.workflows.calibrate import calibrate
from cxrlt.workflows.data import RunData, load_data, split_halves
from cxrlt.workflows.evaluate import evaluate_run
from cxrlt.workflows.post_training import Branch, selection_record
from cxrlt.workflows.specs import check_specs
from cxrlt.workflows.write import RunWriter, write_results

CLASSES = ["Atelectasis", "Effusion", "Mass"]


def tiny_data(n_valid: int = 40, seed: int = 0) -> RunData:
    """Loaders as the later stages see them: labels, patients and a validation split."""
    rng = np.random.default_rng(seed)
    n = n_valid + 20
    labels = (rng.random((n, len(CLASSES))) < [0.5, 0.3, 0.15]).astype(np.uint8)
    labels[:3] = np.eye(len(CLASSES), dtype=np.uint8)  # every class has a positive
    labels[n_valid : n_valid + 3] = np.eye(len(CLASSES), dtype=np.uint8)
    is_valid = np.arange(n) < n_valid
    patients = np.array([f"p{i // 2}" for i in range(n)])
    frame = pd.DataFrame({"ImageID": [f"img{i}.png" for i in range(n)]})
    dls = SimpleNamespace(
        data=SimpleNamespace(labels=labels, patients=patients, frame=frame),
        is_valid=is_valid,
        classes=CLASSES,
        class_counts=labels[~is_valid].sum(axis=0),
        n_train=int((~is_valid).sum()),
    )
    return RunData(dls, split_halves(dls, seed))


def branches_for(data: RunData, seed: int = 1) -> dict[str, Branch]:
    """A distinct model per role, each with its own validation logits."""
    rng = np.random.default_rng(seed)
    shape = (int(data.dls.is_valid.sum()), len(CLASSES))
    return {role: Branch(1, None, logits=rng.normal(size=shape)) for role in ROLES}


def calibrated_run(post: str = ""):
    specs = check_specs(RunOptions(post=post))
    data = tiny_data()
    branches = branches_for(data)
    loss_func = specs.loss.build(class_counts=data.dls.class_counts.tolist(), n_items=20)
    return specs, data, branches, calibrate(specs, loss_func, data, branches)


def test_the_data_stage_loads_splits_and_halves_the_validation_images():
    options = RunOptions(dataset="synthetic:n_images=160,size=32", size=32, bs=16, seed=3)
    data = load_data(options, check_specs(options), torch.device("cpu"))
    n_valid = int(data.dls.is_valid.sum())
    assert 0 < n_valid < len(data.dls.is_valid)
    assert len(data.halves) == n_valid and set(np.unique(data.halves)) == {0, 1}
    assert data.test_images is None  # the embedded data set has no test images
    split = data.split
    assert list(split["ImageID"]) == list(data.dls.data.frame["ImageID"])
    assert split["half"].notna().sum() == n_valid  # only validation images have a half


def test_a_validation_split_of_one_patient_is_refused_naming_the_option():
    data = tiny_data()
    dls = data.dls
    dls.data.patients = np.array(["same"] * len(dls.is_valid))
    with pytest.raises(CxrltError, match="single patient.*--valid-frac"):
        split_halves(dls, 0)


def test_calibration_reports_each_half_with_the_logits_of_the_other_halfs_model():
    _, data, branches, calibrated = calibrated_run()
    for half in (0, 1):
        rows = data.halves == half
        np.testing.assert_array_equal(calibrated.logits[rows], branches[ROLES[half]].logits[rows])
    targets = data.dls.data.labels[data.dls.is_valid]
    np.testing.assert_array_equal(calibrated.targets, targets)
    # no calibrator: the probabilities are the loss's (BCE: the sigmoid) of those logits
    sigmoid = 1 / (1 + np.exp(-calibrated.logits))
    np.testing.assert_allclose(calibrated.fitted.probs, sigmoid, rtol=1e-6)
    assert calibrated.fitted.calibrator is None
    np.testing.assert_array_equal(calibrated.fitted.thresholds, 0.5)  # "fixed" by default


def test_a_calibrator_is_fitted_and_changes_the_probabilities():
    _, _, _, plain = calibrated_run()
    _, _, _, scaled = calibrated_run("temp-scale")
    assert scaled.fitted.calibrator is not None
    assert not np.allclose(scaled.fitted.probs, plain.fitted.probs)
    assert ((scaled.fitted.probs > 0) & (scaled.fitted.probs < 1)).all()


def test_evaluation_scores_the_cross_fitted_logits_as_scikit_learn_does():
    _, data, _, calibrated = calibrated_run()
    report = evaluate_run(calibrated, data)
    targets, probs = calibrated.targets, calibrated.fitted.probs
    ap = [average_precision_score(targets[:, c], calibrated.logits[:, c]) for c in range(3)]
    f1 = [f1_score(targets[:, c], probs[:, c] >= 0.5, zero_division=0) for c in range(3)]
    assert report.overall["mAP"] == pytest.approx(np.mean(ap))
    assert report.overall["mF1"] == pytest.approx(np.mean(f1))
    assert report.intervals is not None  # patient-grouped, from the validation patients


def test_the_write_stage_writes_what_reads_back_and_nothing_on_other_ranks(tmp_path):
    specs, data, branches, calibrated = calibrated_run("temp-scale")
    report = evaluate_run(calibrated, data)
    selection = selection_record("last", branches, trained=False)

    other_rank = RunWriter(RunDir(tmp_path / "other", check=False), active=False)
    write_results(other_rank, specs, data, calibrated, report, selection)
    assert not (tmp_path / "other").exists()

    run_dir = RunDir(tmp_path / "run", check=False)
    write_results(RunWriter(run_dir, active=True), specs, data, calibrated, report, selection)
    assert {PREDICTIONS, METRICS, CALIBRATION} <= {p.name for p in run_dir.path.iterdir()}
    saved = run_dir.read_predictions(CLASSES)
    valid_ids = data.dls.data.frame["ImageID"][data.dls.is_valid]
    assert list(saved.image_ids) == list(valid_ids)
    np.testing.assert_array_equal(saved.logits, calibrated.logits)
    np.testing.assert_array_equal(saved.calibrated, calibrated.fitted.probs)
    np.testing.assert_array_equal(saved.predicted, calibrated.fitted.probs >= 0.5)
    metrics = run_dir.read_metrics()
    assert metrics["mAP"] == pytest.approx(report.overall["mAP"])
    assert metrics["selection"]["weights"][KEPT] == "model.safetensors"
    assert run_dir.read_calibration()["calibrator"]["spec"] == str(specs.calibrator.spec)
