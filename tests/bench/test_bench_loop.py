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
    for arm in ("fastai", "cxrlt"):
        expected = arms[arm]["seconds"] / arms["plain"]["seconds"]
        assert record["ratios"][f"{arm} / plain"] == pytest.approx(expected)

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
    assert "| cxrlt |" in record["table"]
