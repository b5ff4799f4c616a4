"""The start-up and memory benchmarks run (tiny sizes) and record consistent figures.

No timing or memory assertions: the figures come from real runs on the machine at hand. The
checks are that every figure is positive, every ratio follows from the raw figures, the goals
are recorded, and the commands timed (``show`` included) imported no torch, fastai or timm.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_benchmark(name: str, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(out)},  # the sparse cache goes here, and must go
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (out / f"{name}.md").read_text().strip()
    return json.loads((out / f"{name}.json").read_text())


def goals_by_figure(record: dict) -> dict[str, dict]:
    goals = {goal["figure"]: goal for goal in record["goals"]}
    for goal in goals.values():
        assert goal["op"] in ("<=", ">=")
        met = (
            goal["value"] <= goal["limit"] if goal["op"] == "<=" else goal["value"] >= goal["limit"]
        )
        assert goal["met"] is met
    return goals


@pytest.mark.slow
def test_startup_benchmark_times_the_cli_and_checks_its_imports(tmp_path):
    record = run_benchmark("startup", tmp_path)
    seconds = record["seconds"]
    assert record["repeats"] == 1
    commands = (
        "cxrlt --help",
        "cxrlt list losses",
        "cxrlt list",
        "cxrlt show loss bce",
        "cxrlt show post crt",
        "cxrlt show backbone resnet18",
    )
    assert set(seconds) == {"python -c pass", "python -c 'import torch'", *commands}
    assert all(value > 0 for value in seconds.values())
    assert all(min(record["all_seconds"][name]) == value for name, value in seconds.items())
    bare, torch = seconds["python -c pass"], seconds["python -c 'import torch'"]
    for name, value in seconds.items():
        assert math.isclose(record["ratio_to_bare"][name], value / bare)
        assert math.isclose(record["ratio_to_torch_import"][name], value / torch)

    # Every command timed, `show` included, stays free of the heavy libraries.
    assert record["no_heavy_imports"] == dict.fromkeys(commands, True)
    assert all(record["imports"][name]["modules"] > 0 for name in commands)

    goals = goals_by_figure(record)
    assert set(goals) == {f"{name} seconds" for name in commands}
    for name in commands:
        assert goals[f"{name} seconds"]["value"] == seconds[name]
    assert all(goal["op"] == "<=" and goal["limit"] == 0.5 for goal in goals.values())


@pytest.mark.slow
def test_memory_benchmark_measures_a_run_and_the_cache_reader(tmp_path):
    record = run_benchmark("memory", tmp_path)
    baseline, run, reader = record["import_baseline"], record["run"], record["reader"]
    for figures in (baseline, run):
        assert all(figures[key] > 0 for key in ("peak_rss", "peak_anon_polled", "seconds"))
    assert reader["cache"] == {**reader["cache"], "images": 2000, "size": 64}
    assert reader["cache"]["bytes"] == 2000 * 64 * 64
    assert reader["batches"] > 0 and reader["images"] == reader["batches"] * reader["bs"]
    assert reader["batch_shape"] == [reader["bs"], 1, 64, 64]
    assert all(reader[key] > 0 for key in ("peak_anon", "peak_file", "peak_rss"))
    assert reader["peak_anon"] >= reader["opened"]["RssAnon"]

    ratios = record["ratios"]
    cache_bytes = reader["cache"]["bytes"]
    private = reader["peak_anon"] - reader["imported"]["RssAnon"]
    expected = {
        "run_peak_rss_vs_import_baseline": run["peak_rss"] / baseline["peak_rss"],
        "reader_private_vs_cache": private / cache_bytes,
        "reader_peak_anon_vs_cache": reader["peak_anon"] / cache_bytes,
        "reader_peak_file_vs_cache": reader["peak_file"] / cache_bytes,
        "reader_peak_file_vs_bytes_read": reader["peak_file"] / (reader["images"] * 64 * 64),
        "reader_peak_rss_vs_import_baseline": reader["peak_rss"] / baseline["peak_rss"],
        "reader_private_vs_batch_buffers": private / (reader["bs"] * 64 * 64 * 5),
    }
    assert ratios == pytest.approx(expected)

    goals = goals_by_figure(record)
    assert goals["run peak RSS / import baseline"]["value"] == pytest.approx(
        expected["run_peak_rss_vs_import_baseline"]
    )
    assert goals["reader private memory / cache size"]["value"] == pytest.approx(
        expected["reader_private_vs_cache"]
    )
    assert goals["reader private memory / cache size"]["limit"] == 0.01
    # The temporary folder with the sparse cache and the run is gone.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("cxrlt-memory-")]
