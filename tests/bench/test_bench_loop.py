"""The training-loop overhead benchmark runs and writes consistent figures (tiny sizes: the
figures themselves come from the full run, and no test asserts a timing)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
ARMS = ("plain", "fastai", "cxrlt")


@pytest.mark.slow
def test_loop_overhead_benchmark_writes_three_arms_and_both_goals(tmp_path):
    """Also: the plain loop runs torch's faster AdamW kernel (recorded with both timings), and
    cxrlt is reported against the plain loop and against plain fastai."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "loop_overhead.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "loop_overhead.json").read_text())
    assert (tmp_path / "loop_overhead.md").exists()

    arms = record["arms"]
    assert set(arms) == set(ARMS)
    for arm in ARMS:
        assert arms[arm]["seconds"] > 0
        assert arms[arm]["seconds"] == min(arms[arm]["rounds"])
        assert 0 <= arms[arm]["valid_mAP"] <= 1
    ratios = record["ratios"]
    assert set(ratios) == {"fastai / plain", "cxrlt / plain", "cxrlt / fastai"}
    for arm in ("fastai", "cxrlt"):
        expected = arms[arm]["seconds"] / arms["plain"]["seconds"]
        assert ratios[f"{arm} / plain"] == pytest.approx(expected)
    assert ratios["cxrlt / fastai"] == pytest.approx(
        arms["cxrlt"]["seconds"] / arms["fastai"]["seconds"]
    )

    plain_optimizer = record["plain_optimizer"]
    kernels = plain_optimizer["step_seconds"]
    assert set(kernels) == {"fused", "foreach"}  # torch >= 2.4 has both on the CPU
    assert plain_optimizer["kernel"] == min(kernels, key=kernels.get)
    steps = record["optimizer_step_seconds"]
    assert set(steps) == set(ARMS)
    assert steps["plain"] == kernels[plain_optimizer["kernel"]]

    data = record["data_path"]
    assert data["workers"] == 0
    assert data["loader_seconds_per_batch"] > 0 and data["step_seconds_per_batch"] > 0
    assert data["loader_share"] == pytest.approx(
        data["loader_seconds_per_batch"] / data["step_seconds_per_batch"]
    )

    goals = {goal["figure"]: goal for goal in record["goals"]}
    assert set(goals) == {"cxrlt / plain loop", "loader share of step time"}
    assert goals["cxrlt / plain loop"]["value"] == pytest.approx(
        arms["cxrlt"]["seconds"] / arms["plain"]["seconds"]
    )
    assert (
        goals["cxrlt / plain loop"]["op"] == "<=" and goals["cxrlt / plain loop"]["limit"] == 1.03
    )
    assert goals["loader share of step time"]["value"] == pytest.approx(data["loader_share"])
    assert goals["loader share of step time"]["limit"] == 0.10
    assert "| arm | seconds | vs plain loop | vs plain fastai | valid mAP |" in record["table"]
    assert "| cxrlt |" in record["table"]
    assert f"torch.optim.AdamW, {plain_optimizer['kernel']} kernel" in record["table"]
