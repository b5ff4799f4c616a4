"""The metrics benchmark still runs (``--quick``: the figures come from the full-size run)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "metrics_speed.py"


def test_quick_metrics_benchmark_writes_its_figures(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads((tmp_path / "metrics_speed.json").read_text())
    assert figures["images"] == 3000 and figures["classes"] == 30
    assert figures["evaluate_seconds"] > 0 and figures["speed_up"] > 0
    assert figures["max_abs_difference"] < 1e-10
    assert "| cxrlt evaluate" in (tmp_path / "metrics_speed.md").read_text()
