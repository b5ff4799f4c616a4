"""The examples run as users would run them."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str) -> str:
    """The output of ``examples/<name> --quick``, which must exit cleanly."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_python_api_example_trains_and_reports():
    output = run_example("train_python_api.py")
    assert "mAP" in output and "Pneumothorax" in output


@pytest.mark.slow
def test_post_train_example_calibrates_on_one_half_and_reports_on_the_other():
    output = run_example("post_train_and_calibrate.py")
    ece = {
        stage: float(value)
        for stage, value in re.findall(r"(before|after): mF1 \S+  ECE (\S+)", output)
    }
    assert set(ece) == {"before", "after"}
    assert ece["after"] < ece["before"]  # temperature scaling fixes one epoch's overconfidence


@pytest.mark.slow
def test_predict_new_images_example_predicts_every_image_of_the_folder():
    output = run_example("predict_new_images.py")
    assert "5 new images; columns prob:Normal" in output
    assert len(re.findall(r"^\S+\.png(\s+0\.\d+){3}$", output, re.MULTILINE)) == 5


@pytest.mark.slow
def test_export_example_reloads_a_learner_that_predicts_the_same():
    output = run_example("export_and_reload.py")
    difference = re.search(r"largest difference from the original learner: (\S+)", output)
    assert difference and float(difference[1]) <= 1e-6
    assert re.search(r"\.png: predicted .*; most likely:", output)
