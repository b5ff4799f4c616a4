"""The benchmark suite runs its benchmarks and gathers every goal into one table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_suite_gathers_the_goals_of_the_benchmarks_it_ran(tmp_path):
    command = [sys.executable, str(BENCH / "suite.py"), "--quick", "--only", "startup"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    goals = json.loads((tmp_path / "startup.json").read_text())["goals"]
    table = (tmp_path / "summary.md").read_text()
    assert goals and all(f"| startup | {goal['figure']} |" in table for goal in goals)
    assert "quick sizes" in table


def test_suite_refuses_an_unknown_benchmark(tmp_path):
    command = [sys.executable, str(BENCH / "suite.py"), "--only", "startup,warp-drive"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "unknown benchmark warp-drive" in result.stderr
