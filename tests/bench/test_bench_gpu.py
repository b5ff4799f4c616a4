"""The GPU benchmark's plumbing, through its CPU dry run: ``bench/gpu.sh --dry-run`` runs both
arms and the loader in one process, then the cxrlt arm on two CPU ranks over gloo (torchrun).
No timing is checked: the dry run's figures mean nothing."""

import datetime
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
def test_gpu_benchmark_dry_run_writes_every_figure(tmp_path):
    """images/s of both arms and their ratio, peak memory, host syncs per batch, the loader's
    images/s against training's, DDP scaling; the plain loop on torch's fused AdamW."""
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
    assert record["sync_steps"] == 1
    datetime.date.fromisoformat(record["date"])

    plain, ours = record["plain"], record["cxrlt"]
    for arm in (plain, ours):
        assert arm["images_per_s"] > 0 and arm["seconds"] > 0
        assert arm["images_per_s"] == pytest.approx(
            record["bs"] * record["steps"] / arm["seconds"], rel=0.01
        )
        assert arm["peak_memory_gib"] is None  # no GPU memory on the CPU
        assert arm["host_syncs_per_batch"] is None  # nor a device for the host to wait on
    assert ours["cudnn_deterministic"] is True  # seeded as `cxrlt run` seeds
    assert plain["optimizer"] == "AdamW, fused kernel"  # torch has it on the CPU, as on CUDA
    assert record["ratio"] == pytest.approx(ours["images_per_s"] / plain["images_per_s"], 1e-3)

    loader = record["loader"]
    assert loader["augment"] is True and loader["workers"] == 0
    assert loader["images_per_s"] == pytest.approx(
        record["bs"] * record["steps"] / loader["seconds"], rel=0.01
    )
    assert record["loader_ratio"] == pytest.approx(
        loader["images_per_s"] / ours["images_per_s"], rel=1e-3
    )

    ddp = record["ddp"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    assert ddp["images_per_s"] > 0
    assert ddp["images_per_s"] == pytest.approx(2 * record["bs"] * 2 / ddp["seconds"], rel=0.01)
    assert ddp["scaling_efficiency"] == pytest.approx(
        ddp["images_per_s"] / (2 * ours["images_per_s"]), rel=1e-3
    )
    assert ddp["peak_memory_gib_per_rank"] == [None, None]
    assert ddp["host_syncs_per_batch"] is None

    limits = {goal["figure"]: (goal["op"], goal["limit"]) for goal in record["goals"]}
    assert limits == {
        "cxrlt / plain images/s": (">=", 0.97),
        "loader / training images/s": (">=", 1.5),
        "DDP scaling efficiency, 2 GPUs": (">=", 0.85),
    }
    text = (tmp_path / "gpu.md").read_text()
    assert "DRY RUN" in text and "| plain PyTorch loop |" in text and "DDP (gloo)" in text
    assert "host syncs per batch" in text and "with on-device augmentation" in text


def sync_counter(monkeypatch, device: str):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # the scripts import `harness` so
    from gpu_throughput import SyncCounter

    return SyncCounter(torch.device(device))


def test_sync_counter_reports_none_off_cuda(monkeypatch):
    counter = sync_counter(monkeypatch, "cpu")
    counter.start()
    float(torch.ones(3).sum())
    counter.stop()
    assert counter.count is None  # the CPU never waits for a device: no count, not zero


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist only with CUDA")
def test_sync_counter_counts_each_host_synchronisation(monkeypatch):
    counter = sync_counter(monkeypatch, "cuda")
    x = torch.ones(8, device="cuda")
    counter.start()
    y = (x * 2).sum()  # queued on the device: no sync
    counter.stop()
    assert counter.count == 0
    counter.start()
    values = [float(y), y.item(), float(x[0])]  # each copies a scalar back and waits
    counter.stop()
    assert counter.count == 3 and values == [16.0, 16.0, 1.0]
    assert torch.cuda.get_sync_debug_mode() == 0  # left as it was
