import numpy as np
import pytest
from cxrlt_template.threshold import MyThreshold

from cxrlt.testing import check_entry


def test_matches_hand_computation():
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6], [0.9, 0.5]])
    targets = np.array([[0, 1], [0, 1], [0, 1], [0, 1], [1, 1]])
    # class 0: negatives 0.1..0.4; their 0.75 quantile lies a quarter of the way from 0.3 to
    # 0.4 (position 0.75 * 3 = 2.25). Class 1 has no negative: 0.5.
    thresholds = MyThreshold(fpr=0.25).fit(probs, targets)
    assert thresholds.tolist() == pytest.approx([0.325, 0.5])


def test_keeps_the_threshold_contract():
    """One threshold per class in [0, 1], state through JSON and back."""
    check_entry("thresholds", "my-threshold:fpr=0.2")
