"""Metrics against scikit-learn on the same inputs."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cxrlt.evaluation.metrics import evaluate, macro_average_precision


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
    assert report.overall["mAP_chance"] == pytest.approx(targets[:, :4].mean(axis=0).mean())


def test_ranking_metric_is_the_same_on_logits_and_probabilities(scored):
    probs, targets = scored
    logits = np.log(probs + 1e-9) - np.log1p(-probs + 1e-9)
    assert macro_average_precision(logits, targets) == pytest.approx(
        macro_average_precision(probs, targets)
    )


def test_ranking_on_logits_survives_probabilities_saturating_in_float32():
    targets = np.array([[1], [0], [1], [0]])
    logits = np.array([[30.0], [25.0], [20.0], [-1.0]], dtype=np.float32)
    probs = 1 / (1 + np.exp(-logits))  # the first three all round to 1.0
    assert (probs[:3] == 1.0).all()
    on_probs = evaluate(probs, targets, ["a"]).overall["mAP"]
    on_logits = evaluate(probs, targets, ["a"], scores=logits).overall["mAP"]
    assert on_logits == pytest.approx(average_precision_score(targets[:, 0], logits[:, 0]))
    assert on_logits != pytest.approx(on_probs)
