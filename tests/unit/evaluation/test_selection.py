"""Choices never made on the reported images: the validation halves, the cross-fitted epoch
and tau, and what a run records about them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.split import validation_halves
from cxrlt.evaluation.metrics import evaluate, macro_average_precision
from cxrlt.evaluation.selection import cross_fitted, epoch_score, half_scores
from cxrlt.pytest_plugin import TINY_DATA


def test_halves_keep_patients_whole_and_put_rare_classes_on_both_sides():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(300), 2)
    labels = (rng.random((600, 5)) < [0.3, 0.1, 0.05, 0.02, 0.0]).astype(int)
    labels[:, 4] = np.isin(patients, [3, 70, 150, 222])  # four positive patients, 8 images
    halves = validation_halves(patients, labels, seed=1)
    assert pd.Series(halves).groupby(patients).nunique().max() == 1
    assert abs(np.mean(halves) - 0.5) < 0.05
    for c in range(5):  # the positive patients split evenly wherever the counts allow
        counts = [labels[halves == h, c].sum() for h in (0, 1)]
        assert abs(counts[0] - counts[1]) <= 2, (c, counts)
    assert np.array_equal(halves, validation_halves(patients, labels, seed=1))
    assert not np.array_equal(halves, validation_halves(patients, labels, seed=2))


def noise_study(seed: int, epochs: int, n: int = 400, classes: int = 10):
    """Validation labels and ``epochs`` sets of logits that know nothing about them: what a
    run reports under each protocol, and under no choice at all (the first epoch)."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n // 2), 2)
    targets = (rng.random((n, classes)) < np.linspace(0.04, 0.2, classes)).astype(int)
    halves = validation_halves(patients, targets, seed=seed)
    candidates = [rng.normal(size=(n, classes)) for _ in range(epochs)]
    scores = [half_scores(logits, targets, halves) for logits in candidates]

    def chosen(score: str) -> np.ndarray:
        return candidates[int(np.argmax([s[score] for s in scores]))]

    reported = {
        "best": chosen(epoch_score("best", None)),
        "cross-fit": cross_fitted([chosen(epoch_score("cross-fit", h)) for h in (0, 1)], halves),
        "none": candidates[0],
    }
    return reported, targets, patients


def test_choosing_on_the_reported_images_is_optimistic_and_cross_fitting_is_not():
    """Over many noise studies, the best-epoch protocol reports more than no choice at all,
    and cross-fitting reports what no choice reports (the chance level of AP)."""
    gains = {"best": [], "cross-fit": []}
    for seed in range(40):
        reported, targets, _ = noise_study(seed, epochs=10)
        chance = macro_average_precision(reported["none"], targets)
        for name in gains:
            gains[name].append(macro_average_precision(reported[name], targets) - chance)
    mean = {name: np.mean(values) for name, values in gains.items()}
    sem = {name: np.std(values, ddof=1) / np.sqrt(len(values)) for name, values in gains.items()}
    assert mean["best"] > 4 * sem["best"] and mean["best"] > 0.005
    assert abs(mean["cross-fit"]) < 2.5 * sem["cross-fit"] and abs(mean["cross-fit"]) < 0.01


def test_on_noise_the_cross_fitted_map_holds_chance_in_its_interval_and_the_best_does_not():
    reported, targets, patients = noise_study(seed=7, epochs=40)
    # The chance level of AP is the mean AP of random rankings (above the prevalence for
    # classes with few positives).
    rng = np.random.default_rng(0)
    chance = np.mean(
        [macro_average_precision(rng.random(targets.shape), targets) for _ in range(200)]
    )
    intervals = {}
    for name in ("best", "cross-fit"):
        logits = reported[name]
        report = evaluate(
            1 / (1 + np.exp(-logits)), targets, [str(c) for c in range(10)],
            scores=logits, patients=patients,
        )  # fmt: skip
        intervals[name] = report.intervals.overall["mAP"]
    low, high = intervals["cross-fit"]
    assert low <= chance <= high
    assert intervals["best"][0] > chance


RUN = ["run", "--dataset", TINY_DATA, "--size", "32", "--bs", "32", "--seed", "5"]


@pytest.fixture(scope="module")
def tau_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("select") / "tau"
    result = CliRunner().invoke(
        app, [*RUN, "--epochs", "3", "--lr", "3e-2", "--post", "tau-norm", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out, " ".join(result.output.split())


@pytest.mark.slow
def test_each_half_is_reported_by_the_epoch_and_tau_chosen_on_the_other(tau_run):
    out, output = tau_run
    config = json.loads((out / "config.json").read_text())
    selection, best = config["selection"], config["training"]["best_by_score"]
    assert selection["protocol"] == "cross-fit"
    assert selection["starts"] == {
        "half0": best["half1"]["epoch"],
        "half1": best["half0"]["epoch"],
        "kept": best["all"]["epoch"],
    }
    # tau chooses on half rows, so each half has its own model (file), the kept one its own
    assert selection["weights"] == {
        "half0": "model-half0.safetensors",
        "half1": "model-half1.safetensors",
        "kept": "model.safetensors",
    }
    assert all((out / name).is_file() for name in selection["weights"].values())
    for role in ("half0", "half1", "kept"):  # what each model's tau-norm chose, and on what
        (chosen,) = selection["post_choices"][role]
        by_tau = chosen["validation_loss_by_tau"]
        assert chosen["step"].startswith("tau-norm") and len(by_tau) > 1
        assert by_tau[str(chosen["tau"])] == min(by_tau.values())
    assert "chosen on one validation half and reported on the other" in output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"]["protocol"] == "cross-fit"
    split = pd.read_csv(out / "split.csv")
    assert set(split.loc[split["split"] == "valid", "half"]) == {0, 1}
    assert split.loc[split["split"] == "train", "half"].isna().all()


@pytest.mark.slow
def test_from_run_starts_each_half_from_its_own_model(tau_run, tmp_path):
    out, _ = tau_run
    again = tmp_path / "again"
    result = CliRunner().invoke(app, ["run", "--from-run", str(out), "--out", str(again)])
    assert result.exit_code == 0, result.output
    logits = [c for c in pd.read_csv(out / "valid_predictions.csv").columns if "logit:" in c]
    before = pd.read_csv(out / "valid_predictions.csv")[logits].to_numpy()
    after = pd.read_csv(again / "valid_predictions.csv")[logits].to_numpy()
    assert np.allclose(before, after, atol=1e-5)


@pytest.mark.slow
def test_the_best_protocol_is_kept_and_says_it_is_optimistic(tmp_path):
    out = tmp_path / "best"
    result = CliRunner().invoke(
        app, [*RUN, "--epochs", "3", "--lr", "3e-2", "--select", "best", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    log = pd.read_csv(out / "log.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mAP"] == pytest.approx(log["mAP"].max())
    assert "optimistic" in metrics["selection"]["description"]


@pytest.mark.slow
def test_from_run_refuses_a_base_whose_halves_differ(tau_run, tmp_path):
    out, _ = tau_run
    base = tmp_path / "base"
    shutil.copytree(out, base)
    split = pd.read_csv(base / "split.csv", dtype=str, keep_default_na=False)
    valid = split["split"] == "valid"
    split.loc[valid, "half"] = split.loc[valid, "half"].map({"0": "1", "1": "0"})
    split.to_csv(base / "split.csv", index=False)
    result = CliRunner().invoke(app, ["run", "--from-run", str(base), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "split or its halves differ" in " ".join(result.output.split())
