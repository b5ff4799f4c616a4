"""The evaluation benchmark still runs (``--quick``: the figures come from the full-size run)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "evaluation.py"


@pytest.mark.slow
def test_quick_evaluation_benchmark_writes_consistent_figures(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "evaluation.json").read_text())
    assert record["quick"] is True

    metrics = record["metrics"]
    assert metrics["images"] == 3000 and metrics["classes"] == 30
    assert metrics["evaluate_seconds"] > 0 and metrics["sklearn_seconds"] > 0
    speed_up = metrics["sklearn_seconds"] / metrics["evaluate_seconds"]
    assert metrics["speed_up"] == pytest.approx(speed_up, rel=0.02)  # from unrounded times
    assert metrics["max_abs_difference"] < 1e-10

    tta = record["tta"]
    assert tta["arch"] == "resnet18" and tta["views"] == 4  # image, mirror, two scales
    assert tta["post"] == "tta:flip=True,scales=[0.9,1.1],merge=prob"
    assert tta["cxrlt_seconds"] > 0 and tta["plain_seconds"] > 0
    assert tta["ratio"] == pytest.approx(tta["cxrlt_seconds"] / tta["plain_seconds"], rel=0.02)
    assert tta["cxrlt_images_per_s"] == pytest.approx(
        tta["images"] / tta["cxrlt_seconds"], rel=0.02
    )
    assert 0 <= tta["max_abs_logit_difference"] < 1e-4  # the same logits both ways

    goals = {goal["figure"]: goal for goal in record["goals"]}
    assert goals["sklearn / cxrlt metrics time"]["value"] == metrics["speed_up"]
    assert goals["cxrlt / plain TTA time"]["value"] == tta["ratio"]
    assert goals["max TTA logit difference"]["value"] == tta["max_abs_logit_difference"]
    assert all(goal["met"] == _holds(goal) for goal in record["goals"])
    text = (tmp_path / "evaluation.md").read_text()
    assert "| cxrlt evaluate" in text and "| cxrlt (rebuild + predict_logits)" in text


def _holds(goal: dict) -> bool:
    if goal["op"] == "<=":
        return goal["value"] <= goal["limit"]
    return goal["value"] >= goal["limit"]
