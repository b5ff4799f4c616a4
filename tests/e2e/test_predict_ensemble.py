"""The whole chain on the embedded data: train, post-train, calibrate, submit; then predict
again from the run directory, and merge runs into an ensemble."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.embedded import synthetic_folder
from cxrlt.data.labels import CXR_LT_2026_CLASSES
from cxrlt.ensemble import merge_probabilities

DATA = "synthetic:n_images=200,size=32,n_test=24"
RUN = ["--dataset", DATA, "--size", "32", "--epochs", "2", "--bs", "32"]
CHAIN = "crt:epochs=1,tta:scales=[0.9],temp-scale,f1-per-class:min_positives=2"


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def flat(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs on the same split: LDAM-DRW with the founding paper's post chain, and BCE."""
    root = tmp_path_factory.mktemp("chain")
    invoke(
        "run", *RUN, "--loss", "ldam-drw:start=1", "--arch", "convnext_atto",
        "--post", CHAIN, "--out", str(root / "ldam"),
    )  # fmt: skip
    invoke("run", *RUN, "--loss", "bce", "--out", str(root / "bce"))
    return root


@pytest.mark.slow
def test_the_chain_writes_calibration_thresholds_and_a_valid_submission(runs):
    run = runs / "ldam"
    config = json.loads((run / "config.json").read_text())
    assert [step["name"] for step in config["post"]] == ["crt", "tta"]
    assert config["specs"]["calibrator"]["name"] == "temp-scale"
    calibration = json.loads((run / "calibration.json").read_text())
    assert calibration["calibrator"]["state"]["temperature"] > 0
    assert len(calibration["thresholds"]["state"]["thresholds"]) == 30
    submission = pd.read_csv(run / "submission.csv", dtype={"ImageID": str})
    assert list(submission.columns) == ["ImageID", *CXR_LT_2026_CLASSES]
    answers = pd.read_csv(synthetic_folder(200, 32, 100.0, 0, 24) / "test_labels.csv")
    assert sorted(submission["ImageID"]) == sorted(answers["ImageID"].astype(str))
    values = submission.iloc[:, 1:].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"ECE", "mAP_head", "mAP_medium", "mAP_tail"} <= set(metrics)
    predictions = pd.read_csv(run / "valid_predictions.csv")
    assert any(c.startswith("calibrated:") for c in predictions.columns)


@pytest.mark.slow
def test_predict_from_the_run_directory_reproduces_the_submission(runs, tmp_path):
    out = tmp_path / "again.csv"
    invoke("predict", str(runs / "ldam"), "--out", str(out), "--device", "cpu")
    first = pd.read_csv(runs / "ldam" / "submission.csv", dtype={"ImageID": str})
    again = pd.read_csv(out, dtype={"ImageID": str})
    pd.testing.assert_frame_equal(first, again, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_predict_names_what_is_missing(runs, tmp_path):
    result = CliRunner().invoke(
        app, ["predict", str(runs / "bce"), "--dataset", "synthetic:n_images=200,size=32"]
    )
    assert result.exit_code == 2 and "has no test images" in flat(result)
    result = CliRunner().invoke(app, ["predict", str(tmp_path)])
    assert result.exit_code == 2 and "config.json is missing" in flat(result)


@pytest.mark.slow
def test_an_ensemble_merges_members_and_behaves_like_a_run(runs, tmp_path):
    out = tmp_path / "ens"
    invoke("ensemble", str(runs / "ldam"), str(runs / "bce"), "--weights", "2,1", "--out", str(out))
    members = [pd.read_csv(runs / name / "valid_predictions.csv") for name in ("ldam", "bce")]
    finals = [
        m[[f"{'calibrated' if i == 0 else 'prob'}:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
        for i, m in enumerate(members)
    ]
    merged = pd.read_csv(out / "valid_predictions.csv")
    probs = merged[[f"prob:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
    z = (2 * np.log(finals[0] / (1 - finals[0])) + np.log(finals[1] / (1 - finals[1]))) / 3
    assert np.allclose(probs, 1 / (1 + np.exp(-z)), atol=1e-9)
    submissions = [
        pd.read_csv(runs / name / "submission.csv", dtype={"ImageID": str}).iloc[:, 1:].to_numpy()
        for name in ("ldam", "bce")
    ]
    expected, _ = merge_probabilities(submissions, [2, 1], "logit")
    ensemble_submission = pd.read_csv(out / "submission.csv", dtype={"ImageID": str})
    assert np.allclose(ensemble_submission.iloc[:, 1:].to_numpy(), expected, atol=1e-7)
    invoke("report", str(out), "--out", str(tmp_path / "plots"))
    again = tmp_path / "again.csv"
    invoke("predict", str(out), "--out", str(again), "--device", "cpu")
    pd.testing.assert_frame_equal(
        pd.read_csv(again, dtype={"ImageID": str}), ensemble_submission, atol=1e-6, rtol=0
    )


@pytest.mark.slow
def test_an_ensemble_needs_the_same_split(runs, tmp_path):
    other = tmp_path / "other"
    invoke("run", *RUN, "--seed", "9", "--out", str(other))
    result = CliRunner().invoke(
        app, ["ensemble", str(runs / "bce"), str(other), "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 2 and "same split" in flat(result)
    result = CliRunner().invoke(
        app,
        [
            "ensemble",
            str(runs / "bce"),
            str(runs / "ldam"),
            "--weights",
            "1",
            "--out",
            str(tmp_path / "f"),
        ],
    )
    assert result.exit_code == 2 and "--weights needs 2" in flat(result)


def test_post_names_out_of_place_are_refused(tmp_path):
    result = CliRunner().invoke(
        app, ["run", *RUN, "--post", "temp-scale,crt", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "'crt' is out of place" in flat(result)
    result = CliRunner().invoke(
        app, ["run", *RUN, "--post", "crt,nope", "--out", str(tmp_path / "y")]
    )
    assert result.exit_code == 2 and "'nope' is no post-training step" in flat(result)


@pytest.mark.slow
def test_the_founding_command_runs_with_convnext_large_itself(tmp_path):
    """`--loss ldam-drw --arch convnext_large --post crt,tta,temp-scale` at 32 px, a few steps."""
    out = tmp_path / "large"
    invoke(
        "run", "--dataset", "synthetic:n_images=60,size=32,n_test=8", "--size", "32",
        "--epochs", "1", "--bs", "16", "--loss", "ldam-drw", "--arch", "convnext_large",
        "--post", "crt:epochs=1,tta,temp-scale", "--out", str(out),
    )  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["specs"]["arch"]["name"] == "convnext_large" and config["status"] == "complete"
    assert len(pd.read_csv(out / "submission.csv")) == 8


@pytest.mark.slow
def test_binary_predictions_follow_the_held_out_thresholds(runs):
    predictions = pd.read_csv(runs / "ldam" / "valid_predictions.csv")
    calibrated = predictions[[f"calibrated:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
    predicted = predictions[[f"predicted:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
    assert set(np.unique(predicted)) <= {0, 1}
    per_class = pd.read_csv(runs / "ldam" / "metrics_per_class.csv", index_col="class")
    targets = predictions[[f"target:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
    from sklearn.metrics import f1_score

    scored = per_class["n_pos"].to_numpy() > 0
    f1 = [f1_score(targets[:, c], predicted[:, c]) for c in np.flatnonzero(scored)]
    assert per_class["F1"].to_numpy()[scored] == pytest.approx(f1)
    assert calibrated.shape == predicted.shape


@pytest.mark.slow
def test_the_rebuilt_model_gives_the_logits_the_run_evaluated(runs):
    """Prediction-time rebuild (backbone, head, post steps, weights) equals the evaluated
    models: each validation half's logits come from the weights file that reported it."""
    from safetensors.torch import load_model

    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.prediction import load_run

    trained = load_run(runs / "ldam")
    dls = cxr_dataloaders(DATA, size=32, bs=32, device="cpu")
    images = np.stack([dls.valid.dataset[i][0].numpy() for i in range(len(dls.valid.dataset))])
    saved = pd.read_csv(runs / "ldam" / "valid_predictions.csv")
    expected = saved[[f"logit:{c}" for c in CXR_LT_2026_CLASSES]].to_numpy()
    split = pd.read_csv(runs / "ldam" / "split.csv")
    halves = split.loc[split["split"] == "valid", "half"].to_numpy()
    weights = json.loads((runs / "ldam" / "config.json").read_text())["selection"]["weights"]
    for half in (0, 1):
        load_model(trained.model, str(runs / "ldam" / weights[f"half{half}"]))
        rows = halves == half
        assert np.allclose(trained.logits(images[rows]), expected[rows], atol=1e-5)
