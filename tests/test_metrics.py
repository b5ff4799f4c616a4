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
