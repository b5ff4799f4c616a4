"""The patient bootstrap: weighted metrics equal evaluate() on repeated rows, patients (not
images) are resampled, intervals are percentiles of those resamples, paired differences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cxrlt.evaluation.bootstrap as bootstrap
from cxrlt.errors import CxrltError
from cxrlt.evaluation.bootstrap import (
    Bootstrap,
    Difference,
    draw_counts,
    p_value,
    paired_draws,
    patient_codes,
)
from cxrlt.evaluation.metrics import evaluate
from cxrlt.outputs.run_dir import RunDir

CLASSES = [f"c{i}" for i in range(7)]
TRAIN_COUNTS = [900, 500, 300, 100, 40, 10, 3]


def make_data(n_images: int = 240, seed: int = 0):
    """Targets with a rare class (2 positives) and one without positives; rounded logits (ties);
    per-class thresholds; 1 to 3 images per patient."""
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.5, 0.3, 0.2, 0.1, 0.05, 0.0, 0.0])
    targets = (rng.random((n_images, len(CLASSES))) < prevalence).astype(int)
    targets[[5, 77], 5] = 1
    logits = np.round(rng.normal(size=targets.shape) + 1.5 * targets - 1, 1)
    probs = 1 / (1 + np.exp(-logits))
    patients = np.array([f"patient {p}" for p in np.sort(rng.integers(0, 120, n_images))])
    return targets, logits, probs, patients


THRESHOLDS = np.linspace(0.3, 0.6, len(CLASSES))


def machinery(targets, logits, probs, patients) -> Bootstrap:
    """The Bootstrap of these predictions, with the decisions and bins evaluate() uses."""
    return Bootstrap(
        targets=targets,
        scores=logits,
        decisions=probs >= THRESHOLDS,
        probs=probs,
        bins=np.minimum((probs * 15).astype(int), 14),
        n_bins=15,
        patients=patients,
    )


def repeated(targets, logits, probs, image_weights):
    """evaluate() on every row repeated as often as its weight says."""
    rows = np.repeat(np.arange(len(targets)), image_weights.astype(int))
    return evaluate(
        probs[rows],
        targets[rows],
        CLASSES,
        THRESHOLDS,
        scores=logits[rows],
        train_counts=TRAIN_COUNTS,
    )


def assert_same_metrics(values: dict, report, row: int = 0) -> None:
    for name in ("AP", "AUC", "F1", "ECE"):
        np.testing.assert_allclose(
            values[name][row], report.per_class[name].to_numpy(), rtol=0, atol=1e-12
        )
    assert values["ECE pooled"][row] == pytest.approx(report.overall["ECE"], abs=1e-12)


def test_unit_weights_reproduce_evaluate():
    targets, logits, probs, patients = make_data()
    engine = machinery(targets, logits, probs, patients)
    values = engine.per_class(np.ones((1, engine.n_patients)))
    report = evaluate(probs, targets, CLASSES, THRESHOLDS, scores=logits)
    assert_same_metrics(values, report)
    assert np.isnan(values["AP"][0, 6]) and np.isnan(values["F1"][0, 6])  # no positive


def test_integer_patient_weights_equal_evaluate_on_the_rows_repeated():
    targets, logits, probs, patients = make_data()
    engine = machinery(targets, logits, probs, patients)
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 4, (3, engine.n_patients)).astype(float)
    values = engine.per_class(counts)
    for row in range(3):
        report = repeated(targets, logits, probs, counts[row][engine.codes])
        assert_same_metrics(values, report, row)


def test_draws_are_patients_with_replacement_and_do_not_depend_on_chunks(monkeypatch):
    counts = draw_counts(50, 3, range(20))
    assert counts.shape == (20, 50) and (counts.sum(axis=1) == 50).all()
    assert np.array_equal(counts, draw_counts(50, 3, range(20)))
    assert not np.array_equal(counts, draw_counts(50, 4, range(20)))
    assert np.array_equal(counts[7:9], draw_counts(50, 3, range(7, 9)))
    targets, logits, probs, patients = make_data()
    engine = machinery(targets, logits, probs, patients)
    whole = engine.resample(30, seed=2)
    monkeypatch.setattr(bootstrap, "CHUNK_ELEMENTS", 1)  # one resample per chunk
    chunked = engine.resample(30, seed=2)
    for name in whole.overall:
        np.testing.assert_allclose(whole.overall[name], chunked.overall[name], atol=1e-12)


def test_intervals_are_percentiles_of_the_metrics_of_resampled_patients():
    targets, logits, probs, patients = make_data()
    report = evaluate(
        probs,
        targets,
        CLASSES,
        THRESHOLDS,
        scores=logits,
        train_counts=TRAIN_COUNTS,
        patients=patients,
        resamples=40,
        bootstrap_seed=9,
    )
    codes, n_patients = patient_codes(patients)

    def macro_means(resampled):
        """The resample's means over the estimate's classes, a missing one at its estimate."""
        per_class = resampled.per_class.fillna(report.per_class)
        means = {f"m{m}": per_class[m].mean() for m in ("AP", "AUC", "F1")}
        for group, members in per_class.groupby(pd.Series(report.groups.group)):
            means |= {f"m{m}_{group}": members[m].mean() for m in ("AP", "F1")}
        return {**resampled.overall, **means}

    naive = [
        macro_means(repeated(targets, logits, probs, counts[codes]))
        for counts in draw_counts(n_patients, 9, range(40))
    ]
    for name in ("mAP", "mAUC", "mF1", "ECE", "mAP_tail", "mF1_head"):
        values = np.array([overall[name] for overall in naive])
        np.testing.assert_allclose(report.intervals.resampled.overall[name], values, atol=1e-12)
        low, high = np.nanpercentile(values, [2.5, 97.5])  # a resample may lack the tail
        assert report.intervals.overall[name] == pytest.approx((low, high), abs=1e-12)
        assert low < report.overall[name] < high
    ap_5 = report.intervals.resampled.per_class["AP"][:, 5]  # 2 positives: sometimes none
    assert 0 < np.isnan(ap_5).sum() < 40
    assert report.intervals.per_class.loc["c5", "AP_low"] == pytest.approx(
        np.nanpercentile(ap_5, 2.5)
    )


def test_a_class_missing_from_a_resample_counts_in_its_means_with_its_estimate():
    """Its own distribution leaves the resample out; the macro means keep the estimate's
    classes, so losing a hard rare class does not lift the resampled mAP."""
    targets, logits, probs, patients = make_data()
    engine = machinery(targets, logits, probs, patients)
    counts = np.ones((1, engine.n_patients))
    counts[0, engine.codes[[5, 77]]] = 0  # the patients of class c5's two positives
    scored = engine.scores(counts)
    assert np.isnan(scored.per_class["AP"][0, 5]) and np.isnan(scored.per_class["F1"][0, 5])
    expected = repeated(targets, logits, probs, counts[0][engine.codes]).per_class["AP"]
    estimate = evaluate(probs, targets, CLASSES, THRESHOLDS, scores=logits).per_class["AP"]
    assert scored.overall["mAP"][0] == pytest.approx(expected.fillna(estimate).mean(), abs=1e-12)
    assert scored.overall["mAP"][0] != pytest.approx(np.nanmean(scored.per_class["AP"][0]))


def test_patients_are_resampled_not_images():
    """Copies of each image within its patient change no resample; as separate patients they
    would narrow the interval."""
    targets, logits, probs, _ = make_data(n_images=150)
    one = [f"patient {i:03d}" for i in range(150)]
    tripled = np.repeat(np.arange(150), 3)
    copies = (targets[tripled], logits[tripled], probs[tripled])
    single = evaluate(probs, targets, CLASSES, scores=logits, patients=one, resamples=200)
    grouped = evaluate(
        copies[2], copies[0], CLASSES, scores=copies[1], patients=np.repeat(one, 3), resamples=200
    )
    as_images = evaluate(
        copies[2], copies[0], CLASSES, scores=copies[1], patients=np.arange(450), resamples=200
    )
    for name in ("mAP", "mAUC", "mF1", "ECE"):
        assert grouped.intervals.overall[name] == pytest.approx(
            single.intervals.overall[name], abs=1e-12
        )

    def width(report) -> float:
        low, high = report.intervals.overall["mAP"]
        return high - low

    assert width(as_images) < 0.8 * width(grouped)


def test_evaluate_names_bad_patients_and_resamples():
    targets, logits, probs, patients = make_data()
    with pytest.raises(CxrltError, match="patient of each of the 240 images, got 239"):
        evaluate(probs, targets, CLASSES, patients=patients[:-1])
    with pytest.raises(CxrltError, match="resamples must be at least 1, got 0"):
        evaluate(probs, targets, CLASSES, patients=patients, resamples=0)


def test_paired_differences_use_the_same_draws():
    targets, logits, probs, patients = make_data()
    better = logits + 2 * targets  # ranks every positive higher
    first = evaluate(probs, targets, CLASSES, scores=logits, patients=patients, resamples=300)
    other = evaluate(probs, targets, CLASSES, scores=better, patients=patients, resamples=300)
    a, b = first.intervals.resampled, other.intervals.resampled
    draws = paired_draws(a, b)
    np.testing.assert_array_equal(draws["mAP"], b.overall["mAP"] - a.overall["mAP"])
    difference = Difference.of(other.overall["mAP"] - first.overall["mAP"], draws["mAP"])
    assert difference.significant and difference.low > 0
    assert difference.p_value == 1 / 300 and difference.p_text() == "< 0.00333"
    same = Difference.of(0.0, paired_draws(a, a)["ECE"])
    assert (same.low, same.high, same.p_value, same.significant) == (0, 0, 1, False)
    reseeded = evaluate(
        probs, targets, CLASSES, scores=logits, patients=patients, resamples=300, bootstrap_seed=1
    )
    with pytest.raises(CxrltError, match="same images with the same patients, seed"):
        paired_draws(a, reseeded.intervals.resampled)


@pytest.mark.parametrize(
    "draws, expected",
    [
        ([0.1, 0.2, 0.3, 0.4], 0.25),  # none crosses 0: floored at 1/B
        ([-0.1, 0.2, 0.3, 0.4], 0.5),  # 2 x 1/4
        ([-0.1, -0.2, 0.3, 0.4], 1.0),
        ([0.0, 0.0, 0.0, 0.0], 1.0),  # capped at 1
        ([-0.1, np.nan, 0.3, 0.4], 2 / 3),  # undefined resamples left out
    ],
)
def test_p_value_is_twice_the_smaller_tail(draws, expected):
    assert p_value(np.array(draws)) == pytest.approx(expected)


def test_metrics_json_and_the_per_class_table_record_the_intervals(tmp_path):
    targets, logits, probs, patients = make_data()
    report = evaluate(
        probs, targets, CLASSES, scores=logits, train_counts=TRAIN_COUNTS, patients=patients
    )
    RunDir(tmp_path).write_metrics(report)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["mAP_ci"] == list(report.intervals.overall["mAP"])
    assert metrics["mF1_tail_ci"] == list(report.intervals.overall["mF1_tail"])
    assert metrics["intervals"]["resamples"] == 1000
    assert metrics["intervals"]["patients"] == len(set(patients))
    table = pd.read_csv(tmp_path / "metrics_per_class.csv", index_col="class")
    assert table.loc["c0", "AP_low"] < table.loc["c0", "AP"] < table.loc["c0", "AP_high"]
    assert np.isnan(table.loc["c6", "AUC_low"]) and table.loc["c6", "ECE_high"] > 0
