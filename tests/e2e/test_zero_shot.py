"""``cxrlt zero-shot`` on the embedded data with a tiny, randomly initialised OpenCLIP model:
a validated Task 2 submission, scores on the labelled validation split, and every name checked
before any image is decoded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.labels import CXR_LT_2026_CLASSES, CXR_LT_2026_TASK2_CLASSES
from cxrlt.registry import resolve
from cxrlt.zero_shot.workflow import validation_rows
from tests.helpers.tiny_clip import write_tiny_clip

DATA = "synthetic:n_images=160,size=32,n_test=12"
TASK2 = ",".join(CXR_LT_2026_TASK2_CLASSES)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return f"local-dir:{write_tiny_clip(tmp_path_factory.mktemp('clip') / 'tiny')}"


def _zero_shot(*args):
    return CliRunner().invoke(app, ["zero-shot", *args, "--device", "cpu"], terminal_width=200)


def test_the_test_split_is_written_as_a_validated_task2_submission(model, tmp_path):
    out = tmp_path / "task2.csv"
    result = _zero_shot("--dataset", DATA, "--model", model, "--classes", TASK2, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "cxr-lt-2026-task2 submission of 12 images" in result.output
    written = pd.read_csv(out, dtype={"ImageID": str})
    assert list(written.columns) == ["ImageID", *CXR_LT_2026_TASK2_CLASSES]
    test_ids = resolve("datasets", DATA).build().test["ImageID"].tolist()
    assert written["ImageID"].tolist() == test_ids
    probs = written[list(CXR_LT_2026_TASK2_CLASSES)].to_numpy()
    assert ((probs > 0) & (probs < 1)).all() and probs.std(axis=0).min() > 0


@pytest.mark.slow
def test_the_validation_split_is_scored_with_intervals(model, tmp_path):
    out = tmp_path / "scores.csv"
    args = ["--dataset", DATA, "--model", model, "--split", "valid", "--seed", "1"]
    result = _zero_shot(*args, "--probability", "softmax", "--out", str(out))
    assert result.exit_code == 0, result.output
    per_class = pd.read_csv(out, index_col="class")
    assert per_class.index.tolist() == list(CXR_LT_2026_CLASSES)
    scored = per_class["AP"].dropna()
    assert len(scored) and scored.between(0, 1).all()
    assert (per_class["AP_low"] <= per_class["AP_high"]).all()
    data = resolve("datasets", DATA).build()
    n_valid = len(validation_rows(data, valid_frac=0.2, seed=1))
    assert f"{n_valid} validation images" in result.output
    assert "mAP: " in result.output and "percentile bootstrap over patients" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-clip"], "Unknown image-text model 'no-such-clip'"),
        (["--classes", "Scoliosis,Mystery"], "no prompts for 'Mystery'"),
        (["--classes", "Scoliosis"], "No submission format of data set 'synthetic'"),
        (["--split", "valid", "--classes", "Scoliosis"], "has no labels for 'Scoliosis'"),
        (["--split", "valid", "--prompts", "absent.toml"], "--prompts absent.toml: no such file"),
        (["--classes", TASK2, "--probability", "softmax", "--shift", "1"], "--shift applies"),
        ([], "declares no zero-shot classes: name the classes"),
    ],
)
def test_names_and_files_are_checked_before_any_image_is_decoded(model, monkeypatch, args, message):
    import cxrlt.prediction

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded before the names were checked")

    monkeypatch.setattr(cxrlt.prediction, "decode_test_images", refuse)
    result = _zero_shot("--dataset", DATA, "--model", model, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_a_data_set_without_test_images_points_at_the_validation_split(model):
    result = _zero_shot("--dataset", "synthetic:n_images=160,size=32", "--model", model,
                        "--classes", TASK2)  # fmt: skip
    assert result.exit_code == 2
    assert "has no test images" in result.output and "--split valid" in result.output


def test_scores_follow_the_images_not_their_order(model, tmp_path):
    """The same images in another batch size give the same probabilities."""
    outs = [tmp_path / f"bs{bs}.csv" for bs in (1, 5)]
    for bs, out in zip((1, 5), outs, strict=True):
        args = ["--dataset", DATA, "--model", model, "--classes", TASK2, "--bs", str(bs)]
        assert _zero_shot(*args, "--out", str(out)).exit_code == 0
    first, second = (pd.read_csv(out).iloc[:, 1:].to_numpy() for out in outs)
    np.testing.assert_allclose(first, second, atol=1e-6)
