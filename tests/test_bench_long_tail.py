"""The long-tail benchmark still runs (``--quick``: figures come from the real runs)."""

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from cxrlt.errors import CxrltError

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "long_tail.py"


@pytest.fixture(scope="module")
def long_tail():
    """The script as a module: called in process, it skips a second torch import."""
    spec = importlib.util.spec_from_file_location("bench_long_tail", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_benchmark_writes_a_row_per_run_and_per_loss(long_tail, tmp_path):
    long_tail.main(["--quick", "--out", str(tmp_path), "--work", str(tmp_path / "runs")])
    runs = pd.read_csv(tmp_path / "long_tail_runs.csv")
    assert sorted(zip(runs["loss"], runs["seed"], strict=True)) == [("asl", 0), ("bce", 0)]
    for column in ("mAP", "mAP_head", "mAP_medium", "mAP_tail"):
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in runs[column]), column
    assert (tmp_path / "runs" / "0-bce-s0" / "config.json").exists()
    table = (tmp_path / "long_tail.md").read_text()
    assert table.count("| bce | 1 | ") == 1 and table.count("| asl | 1 | ") == 1
    assert "equal thirds" in table and "head " in table
    assert (tmp_path / "long_tail.json").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--losses", "bce,no-such-loss"], "no-such-loss"),
        (["--losses", "bce,bce"], "twice"),
        (["--seeds", "0,x"], "--seeds"),
    ],
)
def test_bad_names_fail_before_any_training(long_tail, tmp_path, argv, words):
    with pytest.raises(CxrltError, match=words):
        long_tail.main(["--quick", "--out", str(tmp_path), *argv])
    assert not list(tmp_path.iterdir())
