"""End to end: ``--post study-views`` on two-view embedded data merges each study's
predictions alike in the validation predictions, the run's submission and ``cxrlt predict``."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.embedded import synthetic_dataset
from cxrlt.data.table import STUDY_COLUMN
from cxrlt.prediction import predict_submission
from cxrlt.pytest_plugin import TINY_DATA

PARAMS = {"n_images": 120, "size": 32, "n_test": 8, "views": 2}
DATA = "synthetic:" + ",".join(f"{k}={v}" for k, v in PARAMS.items())
TINY_RUN = ["--size", "32", "--epochs", "1", "--bs", "32", "--seed", "3"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cxrlt_cache):
    out = tmp_path_factory.mktemp("runs") / "views"
    args = ["run", "--dataset", DATA, *TINY_RUN, "--post", "study-views:method=max"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def data(run_dir):
    return synthetic_dataset(**PARAMS)  # the run generated it into the cache


def _spread_within_studies(scores: pd.DataFrame, studies: pd.DataFrame) -> pd.Series:
    """Per study of two images or more, the largest spread of one class's score."""
    joined = scores.merge(studies[["ImageID", STUDY_COLUMN]], on="ImageID")
    counts = joined.groupby(STUDY_COLUMN)["ImageID"].transform("size")
    shared = joined[counts > 1].drop(columns="ImageID").groupby(STUDY_COLUMN)
    return (shared.max() - shared.min()).max(axis=1)


def test_validation_images_of_a_study_have_one_prediction(run_dir, data):
    predictions = pd.read_csv(run_dir / "valid_predictions.csv", dtype={"ImageID": str})
    probs = predictions[["ImageID", *(c for c in predictions if c.startswith("prob:"))]]
    spread = _spread_within_studies(probs, data.frame)
    assert len(spread) >= 3  # the split keeps a patient's (so a study's) images together
    assert spread.max() == 0


def test_the_submission_and_predict_merge_the_test_studies_alike(run_dir, data, tmp_path):
    written = pd.read_csv(run_dir / "submission.csv", dtype={"ImageID": str})
    assert _spread_within_studies(written, data.test).max() == 0
    again = predict_submission(run_dir, tmp_path / "again.csv")
    predicted = pd.read_csv(again, dtype={"ImageID": str})
    pd.testing.assert_frame_equal(predicted, written, atol=1e-6)


def test_data_without_studies_is_refused_naming_the_fix(tmp_path, cxrlt_cache):
    args = ["run", "--dataset", TINY_DATA, *TINY_RUN, "--post", "study-views"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "name no study" in result.output and "synthetic:views=2" in result.output
