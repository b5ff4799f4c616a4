import math

import numpy as np
import pytest
from cxrlt_template.calibrator import MyCalibrator
from scipy.special import expit

from cxrlt.testing import check_entry

LOGITS = np.array([[2.0], [-2.0]])


def test_right_ranking_takes_the_lowest_temperature():
    # The logits rank the one positive first: sharper probabilities (T = 0.5) lose less.
    calibrator = MyCalibrator().fit(LOGITS, [[1], [0]], fallback=expit)
    assert calibrator.state()["temperature"] == 0.5
    assert calibrator.transform([[2.0]])[0, 0] == pytest.approx(1 / (1 + math.exp(-4)))


def test_wrong_ranking_takes_the_highest_temperature():
    # The logits rank the positive last: the flattest probabilities (T = 4) lose least.
    calibrator = MyCalibrator().fit(LOGITS, [[0], [1]], fallback=expit)
    assert calibrator.state()["temperature"] == 4.0


def test_keeps_the_calibrator_contract():
    """Probabilities in [0, 1], each class's ranking kept, state through JSON and back."""
    check_entry("calibrators", "my-calibrator:temperatures=(1.0,2.0)")
