"""The GPU benchmark's plumbing, through its CPU dry run: ``bench/gpu.sh --dry-run`` runs both
arms in one process, then the cxrlt arm on two CPU ranks over gloo (torchrun). No timing is
checked: the dry run's figures mean nothing."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this PyTorch build has no torch.distributed with gloo",
)
def test_gpu_benchmark_dry_run_writes_both_arms_and_ddp(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    env["PYTHON"] = sys.executable  # the interpreter running the tests
    result = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--out", str(tmp_path)],
        cwd=tmp_path,  # the script finds the repository itself
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    record = json.loads((tmp_path / "gpu.json").read_text())
    assert record["dry_run"] is True and record["device"] == "CPU"
    assert (record["arch"], record["size"], record["steps"]) == ("resnet18", 32, 2)

    plain, ours = record["plain"], record["cxrlt"]
    for arm in (plain, ours):
        assert arm["images_per_s"] > 0 and arm["seconds"] > 0
        assert arm["images_per_s"] == pytest.approx(
            record["bs"] * record["steps"] / arm["seconds"], rel=0.01
        )
        assert arm["peak_memory_gib"] is None  # no GPU memory on the CPU
    assert ours["cudnn_deterministic"] is True  # seeded as `cxrlt run` seeds
    assert record["ratio"] == pytest.approx(ours["images_per_s"] / plain["images_per_s"], 1e-3)

    ddp = record["ddp"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    assert ddp["images_per_s"] > 0
    assert ddp["images_per_s"] == pytest.approx(2 * record["bs"] * 2 / ddp["seconds"], rel=0.01)
    assert ddp["scaling_efficiency"] == pytest.approx(
        ddp["images_per_s"] / (2 * ours["images_per_s"]), rel=1e-3
    )
    assert ddp["peak_memory_gib_per_rank"] == [None, None]

    figures = {goal["figure"] for goal in record["goals"]}
    assert figures == {"cxrlt / plain images/s", "DDP scaling efficiency, 2 GPUs"}
    text = (tmp_path / "gpu.md").read_text()
    assert "DRY RUN" in text and "| plain PyTorch loop |" in text and "DDP (gloo)" in text
