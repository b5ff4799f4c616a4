"""The benchmark scripts still run (on tiny inputs: figures come from the real runs)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_data_path_benchmark_runs_and_writes_its_figures(tmp_path):
    out = tmp_path / "data_path.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "data_path.py"),
            "--images",
            "4",
            "--side",
            "160",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["images"] == 4
    assert all(
        figures[f"{kind}_{size}"] > 0
        for kind in ("naive", "loader", "loaderaug")
        for size in (224, 512)
    )
    assert "| 512 |" in figures["table"]


@pytest.mark.slow
def test_training_speed_benchmark_runs_its_cpu_variants(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / "training_speed.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads((tmp_path / "training_speed.json").read_text())
    assert [row["variant"] for row in figures["runs"]] == ["fp32", "fp32 + EMA + clip"]
    assert all(row["seconds"] > 0 and 0 <= row["mAP"] <= 1 for row in figures["runs"])
    assert "| fp32 | 1.00 |" in figures["table"]


@pytest.mark.slow
def test_post_training_benchmark_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / "post_training.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((tmp_path / "post_training.json").read_text())["rows"]
    assert [row["post"] for row in rows] == [
        "(none)",
        "crt,tta:scales=[0.9,1.1],temp-scale,f1-per-class",
    ]
    assert all(0 <= row["mAP"] <= 1 for row in rows)


@pytest.mark.slow
def test_bootstrap_benchmark_runs_and_agrees_with_the_naive_loop(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / "bootstrap.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "bootstrap.json").read_text())
    assert record["quick"] is True and record["resamples"] == 100
    scaled = record["naive_seconds_timed"] * 100 / record["naive_resamples_timed"]
    assert record["naive_seconds_scaled"] == pytest.approx(scaled, rel=0.01)
    assert record["speed_up"] == pytest.approx(scaled / record["cxrlt_seconds"], rel=0.01)
    assert record["max_abs_difference"] < 1e-10  # the same AP and AUC as scikit-learn's
    low, high = record["mAP_interval"]
    assert low < record["mAP"] < high
    goals = {goal["figure"]: goal for goal in record["goals"]}
    assert goals["naive / cxrlt bootstrap time"]["value"] == record["speed_up"]
    assert "| naive: rows gathered" in (tmp_path / "bootstrap.md").read_text()
