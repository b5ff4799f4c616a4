"""The examples run as users would run them."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_python_api_example_trains_and_reports():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_python_api.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mAP" in result.stdout and "Pneumothorax" in result.stdout
