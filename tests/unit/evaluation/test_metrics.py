"""Metrics against scikit-learn on the same inputs."""

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)

from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import (
    calibration_bins,
    chance_average_precision,
    evaluate,
    expected_calibration_error,
    macro_average_precision,
    precision_recall,
)


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    targets = (rng.random((300, 5)) < [0.5, 0.2, 0.05, 0.01, 0.0]).astype(int)
    probs = np.clip(targets * 0.3 + rng.random(targets.shape) * 0.7, 0, 1)
    return probs, targets


def test_macro_means_match_scikit_learn_over_classes_with_positives(scored):
    probs, targets = scored
    report = evaluate(probs, targets, list("abcde"))
    scored_classes = range(4)  # class 'e' has no positive
    assert report.overall["mAP"] == pytest.approx(
        np.mean([average_precision_score(targets[:, c], probs[:, c]) for c in scored_classes])
    )
    assert report.overall["mAUC"] == pytest.approx(
        np.mean([roc_auc_score(targets[:, c], probs[:, c]) for c in scored_classes])
    )
    assert report.overall["mF1"] == pytest.approx(
        np.mean([f1_score(targets[:, c], probs[:, c] >= 0.5) for c in scored_classes])
    )
    assert report.excluded == ["e"]
    assert np.isnan(report.per_class.loc["e", "AP"])
    chance = chance_average_precision(targets[:, :4].sum(axis=0), len(targets))
    assert report.overall["mAP_chance"] == pytest.approx(chance.mean())


def test_ranking_metric_is_the_same_on_logits_and_probabilities(scored):
    probs, targets = scored
    logits = np.log(probs + 1e-9) - np.log1p(-probs + 1e-9)
    assert macro_average_precision(logits, targets) == pytest.approx(
        macro_average_precision(probs, targets)
    )


def test_macro_average_precision_is_nan_for_non_finite_scores(scored):
    probs, targets = scored
    assert np.isnan(macro_average_precision(np.where(probs > 0.9, np.inf, probs), targets))


def test_ranking_on_logits_survives_probabilities_saturating_in_float32():
    targets = np.array([[1], [0], [1], [0]])
    logits = np.array([[30.0], [25.0], [20.0], [-1.0]], dtype=np.float32)
    probs = 1 / (1 + np.exp(-logits))  # the first three all round to 1.0
    assert (probs[:3] == 1.0).all()
    on_probs = evaluate(probs, targets, ["a"]).overall["mAP"]
    on_logits = evaluate(probs, targets, ["a"], scores=logits).overall["mAP"]
    assert on_logits == pytest.approx(average_precision_score(targets[:, 0], logits[:, 0]))
    assert on_logits != pytest.approx(on_probs)


@pytest.fixture
def tied():
    """Scores rounded to one decimal (many ties), plus an all-tie column and a rare class."""
    rng = np.random.default_rng(1)
    targets = (rng.random((2000, 6)) < [0.5, 0.2, 0.05, 0.005, 0.3, 0.1]).astype(int)
    scores = np.round(rng.normal(size=targets.shape) + targets, 1)
    scores[:, 4] = 0.7  # every score tied
    scores[:, 5] = np.where(targets[:, 5] == 1, 2.0, rng.integers(0, 3, len(targets)))
    return scores, targets


def test_ap_and_auc_equal_scikit_learn_with_ties_and_an_all_tie_column(tied):
    scores, targets = tied
    probs = 1 / (1 + np.exp(-scores))
    per_class = evaluate(probs, targets, list("abcdef"), scores=scores).per_class
    for c, name in enumerate("abcdef"):
        y, s = targets[:, c], scores[:, c]
        assert abs(per_class.loc[name, "AP"] - average_precision_score(y, s)) < 1e-10, name
        assert abs(per_class.loc[name, "AUC"] - roc_auc_score(y, s)) < 1e-10, name
    assert per_class.loc["e", "AUC"] == pytest.approx(0.5)
    assert per_class.loc["e", "AP"] == pytest.approx(targets[:, 4].mean())


def test_precision_recall_points_equal_scikit_learn(tied):
    scores, targets = tied
    precision, recall = precision_recall(targets[:, 1], scores[:, 1])
    sk_precision, sk_recall, _ = precision_recall_curve(targets[:, 1], scores[:, 1])
    # scikit-learn: lowest threshold first, stops at full recall, then appends (P, R) = (1, 0)
    kept = len(sk_recall) - 1
    np.testing.assert_allclose(precision[:kept], sk_precision[:-1][::-1], atol=1e-12)
    np.testing.assert_allclose(recall[:kept], sk_recall[:-1][::-1], atol=1e-12)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_f1_equals_scikit_learn_at_one_threshold(scored, threshold):
    probs, targets = scored
    f1 = evaluate(probs, targets, list("abcde"), threshold).per_class["F1"]
    for c in range(4):
        expected = f1_score(targets[:, c], probs[:, c] >= threshold, zero_division=0)
        assert abs(f1.iloc[c] - expected) < 1e-12
    assert np.isnan(f1.iloc[4])


def test_per_class_thresholds_give_each_class_its_own_f1(scored):
    probs, targets = scored
    thresholds = np.array([0.2, 0.4, 0.6, 0.8, 0.5])
    report = evaluate(probs, targets, list("abcde"), thresholds)
    for c in range(4):
        expected = f1_score(targets[:, c], probs[:, c] >= thresholds[c], zero_division=0)
        assert report.per_class["F1"].iloc[c] == pytest.approx(expected)
    assert report.per_class["threshold"].tolist() == thresholds.tolist()
    assert report.overall["mF1"] == pytest.approx(report.per_class["F1"].iloc[:4].mean())


def test_f1_is_zero_when_nothing_is_predicted():
    targets = np.array([[1], [0], [1]])
    report = evaluate(np.array([[0.1], [0.2], [0.3]]), targets, ["a"])
    assert report.overall["mF1"] == 0.0


def test_ece_against_a_hand_computation():
    # 15 bins of width 1/15: 0.05 -> bin 0, 0.10 -> bin 1, 0.62 and 0.64 -> bin 9, 1.0 -> bin 14
    probs = np.array([[0.05, 0.62], [0.10, 0.64], [1.00, 0.62]])
    targets = np.array([[0, 1], [1, 0], [1, 0]])
    class_a = (1 * 0.05 + 1 * abs(1 - 0.10) + 1 * abs(1 - 1.0)) / 3
    class_b = 3 * abs(1 / 3 - (0.62 + 0.64 + 0.62) / 3) / 3
    pooled = (1 * 0.05 + 1 * 0.90 + 3 * abs(1 / 3 - 1.88 / 3) + 1 * 0.0) / 6
    report = evaluate(probs, targets, ["a", "b"])
    assert report.per_class["ECE"].tolist() == pytest.approx([class_a, class_b])
    assert report.overall["ECE"] == pytest.approx(pooled)
    assert expected_calibration_error(probs, targets) == pytest.approx(pooled)


def test_ece_is_zero_for_perfectly_calibrated_bins():
    probs = np.full((10, 1), 0.3)
    targets = np.array([[1]] * 3 + [[0]] * 7)
    assert evaluate(probs, targets, ["a"]).overall["ECE"] == pytest.approx(0.0)


def test_bins_are_open_to_the_right_and_1_falls_in_the_last():
    count, _, _ = calibration_bins(np.array([[0.0, 1 / 15, 14 / 15, 1.0]]).T, np.zeros((4, 1)))
    assert count[0].tolist() == [1, 1] + [0] * 12 + [2]  # edges open to the right, 1.0 in the last


def test_group_means_come_with_the_bounds_used(scored):
    probs, targets = scored
    counts = [5000, 800, 120, 40, 10]
    report = evaluate(
        probs, targets, list("abcde"), train_counts=counts, groups="bounds", bounds=(100, 1000)
    )
    assert report.groups.group == {
        "a": "head",
        "b": "medium",
        "c": "medium",
        "d": "tail",
        "e": "tail",
    }
    assert report.groups.description.startswith("count bounds: head > 1000 (1 class)")
    ap = report.per_class["AP"]
    assert report.overall["mAP_head"] == pytest.approx(ap["a"])
    assert report.overall["mAP_medium"] == pytest.approx(ap[["b", "c"]].mean())
    assert report.overall["mAP_tail"] == pytest.approx(ap["d"])  # 'e' has no positive
    for metric in ("AUC", "F1"):
        assert report.overall[f"m{metric}_head"] == pytest.approx(report.per_class[metric]["a"])
    thirds = evaluate(probs, targets, list("abcde"), train_counts=counts).groups
    assert thirds.members("head") == ["a", "b"] and "equal thirds" in thirds.description


def test_no_groups_without_train_counts(scored):
    report = evaluate(*scored, list("abcde"))
    assert report.groups is None and "mAP_head" not in report.overall


@pytest.mark.parametrize(
    "change, fragment",
    [
        (
            lambda p, t: {"threshold": [0.5, 0.5]},
            "one number, one per class (5) or one per image and class (300, 5)",
        ),
        (lambda p, t: {"classes": list("abcd")}, "one column per class"),
        (lambda p, t: {"probs": p - 0.5}, "between 0 and 1"),
        (lambda p, t: {"probs": np.where(p > 0.9, np.nan, p)}, "finite"),
        (lambda p, t: {"targets": t * 0.5}, "0 or 1"),
    ],
)
def test_bad_inputs_are_named(scored, change, fragment):
    probs, targets = scored
    kwargs = {"probs": probs, "targets": targets, "classes": list("abcde")}
    with pytest.raises(CxrltError, match=re.escape(fragment)):
        evaluate(**{**kwargs, **change(probs, targets)})


def test_calibration_leaves_ap_and_auc_unchanged_when_ranking_on_logits(scored):
    probs, targets = scored
    logits = np.log(probs + 1e-9) - np.log1p(-probs + 1e-9)
    raw = evaluate(probs, targets, list("abcde"), scores=logits)
    calibrated = evaluate(1 / (1 + np.exp(-logits / 3)), targets, list("abcde"), scores=logits)
    pd.testing.assert_frame_equal(raw.per_class[["AP", "AUC"]], calibrated.per_class[["AP", "AUC"]])
    assert raw.overall["ECE"] != pytest.approx(calibrated.overall["ECE"])


def test_per_image_thresholds_give_each_half_its_own_cut(scored):
    """Held-out thresholds: one row of thresholds per image."""
    probs, targets = scored
    cuts = np.where(np.arange(len(probs))[:, None] < 150, 0.3, 0.7) * np.ones(probs.shape[1])
    report = evaluate(probs, targets, list("abcde"), threshold=cuts)
    predicted = probs >= cuts
    expected = [f1_score(targets[:, c], predicted[:, c]) for c in range(4)]
    assert report.per_class["F1"].iloc[:4].tolist() == pytest.approx(expected)
    assert report.per_class["threshold"].tolist() == pytest.approx([0.5] * 5)


@pytest.mark.slow
@pytest.mark.parametrize(("n_pos", "n"), [(1, 7), (3, 10), (10, 10), (5, 400)])
def test_the_chance_level_of_ap_is_the_mean_ap_of_random_rankings(n_pos, n):
    """The closed form against every ranking (small n) or many random ones."""
    rng = np.random.default_rng(0)
    target = np.zeros(n, int)
    target[:n_pos] = 1
    draws = [macro_average_precision(rng.random((n, 1)), target[:, None]) for _ in range(20000)]
    expected = chance_average_precision(np.array([n_pos]), n)[0]
    assert expected == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / np.sqrt(len(draws)))
    assert expected >= n_pos / n
