"""Distributed data-parallel training: two CPU ranks over gloo, launched by torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cxrlt.data.loaders import cxr_dataloaders
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.training.distributed import (
    barrier,
    cleanup,
    distributed,
    gather_checksums,
    is_main_process,
    rank,
    rank_local,
    setup_device,
    world_size,
)
from cxrlt.training.learner import cxr_learner
from tests.helpers.fake_plugins import exploding_loss_plugin

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("distributed_script.py")
LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

needs_gloo = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this PyTorch build has no torch.distributed with gloo",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_single_process_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    device = torch.device("cpu")
    assert setup_device(device) == device
    assert (world_size(), rank(), is_main_process()) == (1, 0, True)
    dls = cxr_dataloaders(TINY_DATA, size=32, bs=16, device=device, seed=0)
    learn = cxr_learner(dls, "resnet18", "bce", pretrained=False)
    model, loaders, cbs = learn.model, list(learn.dls.loaders), list(learn.cbs)
    logger = learn.logger
    with distributed(learn, device) as inside:
        assert inside is learn
        assert learn.model is model and list(learn.dls.loaders) == loaders
        assert list(learn.cbs) == cbs
    assert learn.model is model and list(learn.dls.loaders) == loaders
    assert list(learn.cbs) == cbs and learn.logger is logger
    with rank_local(learn) as inside:
        assert inside is learn and "to_detach" not in vars(learn)
    total = sum(p.detach().double().sum().item() for p in model.parameters())
    assert gather_checksums(model) == pytest.approx([total])
    barrier()
    cleanup()
    assert not torch.distributed.is_initialized()


def torchrun(tmp_path: Path, *args: str, succeed: bool = True) -> str:
    """Run ``args`` under torchrun with 2 CPU ranks; returns the log (asserting success)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    env |= {
        "CXRLT_CACHE_DIR": str(tmp_path / "cache"),  # fresh: both ranks generate it at once
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        *args,
    ]
    start = time.monotonic()
    # Own session: a hung rank is killed with torchrun instead of outliving the test.
    launched = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = launched.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(launched.pid, signal.SIGKILL)
        stdout, stderr = launched.communicate()
    log = f"{time.monotonic() - start:.0f} s\n{stdout[-3000:]}\n{stderr[-6000:]}"
    assert (launched.returncode == 0) == succeed, log
    return log


@needs_gloo
@pytest.mark.slow
def test_two_cpu_ranks_train_one_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    torchrun(tmp_path, str(SCRIPT), str(out))
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]

    for r, record in enumerate(ranks):
        assert (record["rank"], record["world_size"]) == (r, 2)
        # Every rank gathered the same list: one checksum per rank, all equal.
        assert record["after"] == ranks[0]["after"]
        assert len(set(record["after"])) == 1, record["after"]
        assert len(set(record["after_with_buffers"])) == 1, record["after_with_buffers"]
        assert len(set(record["before"])) == 1
        assert record["after"][0] != pytest.approx(record["before"][0], abs=1e-6)
        # Each rank ran its half of the epoch.
        single = record["single_process_batches"]
        assert abs(record["train_batches"] - single / 2) <= 1, record
        assert record["train_images"] == record["train_batches"] * 16
        # The learner is back to a plain model and loaders, even after a failed fit.
        assert record["failed_fit_raised"]
        assert record["model_type"] == "CXRClassifier"
        assert record["loaders"] == ["ArrayDataLoader", "ArrayDataLoader"]
        assert record["callbacks_restored"]
        # get_preds inside the block: every rank gets the whole set, in the data set's order.
        assert record["ddp_preds_in_order"]

    main = ranks[0]
    # Validation predictions were gathered from both ranks without the padding item(s) ...
    assert main["gathered_valid_items"] == main["n_valid"]
    assert main["odd_gathered_items"] == main["n_odd"]
    assert main["n_odd"] % 2 == 1
    # ... so the recorded mAP is the mAP of the whole validation set.
    assert main["recorded_map"] == pytest.approx(main["full_map"], abs=1e-6)
    assert main["odd_recorded_map"] == pytest.approx(main["odd_full_map"], abs=1e-6)
    # Rank 0 alone, after training: no gathering, nothing waits for rank 1.
    assert main["rank_local_items"] == main["n_valid"] == main["ddp_preds_items"]
    assert main["rank_local_map"] == pytest.approx(main["full_map"], abs=1e-6)
    assert main["ddp_preds_match_local"]


@needs_gloo
@pytest.mark.slow
def test_cxrlt_run_under_torchrun_trains_on_both_ranks_and_writes_the_run_once(tmp_path):
    """Post-training that trains (cRT) runs data-parallel too, then rank 0 calibrates."""
    out = tmp_path / "run"
    args = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "2", "--bs", "16"]
    args += ["--post", "crt:epochs=1,temp-scale"]
    log = torchrun(tmp_path, "-m", "cxrlt", "run", *args, "--device", "cpu", "--out", str(out))
    config = json.loads((out / "config.json").read_text())
    checksums = config["distributed"]["weights_checksums"]
    assert config["distributed"]["world_size"] == 2 and len(set(checksums)) == 1
    assert config["status"] == "complete" and config["post"][0]["name"] == "crt"
    assert log.count("Run written to") == 1  # rank 1 prints nothing
    lines = (out / "log.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,") and [line[0] for line in lines[1:]] == ["0", "1"]
    assert json.loads((out / "metrics.json").read_text())["n_images"] == config["data"]["n_valid"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.suffix == ".pt"]


POISON_RANK_1 = exploding_loss_plugin(
    "explode-on-rank-1", 'self.epoch >= 1 and os.environ["RANK"] == "1"'
)


@needs_gloo
@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_instead_of_hanging(
    tmp_path, cxrlt_fake_plugin, monkeypatch
):
    cxrlt_fake_plugin("explode", POISON_RANK_1)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the fake plugin, for the launched ranks
    out = tmp_path / "run"
    args = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "3", "--bs", "16"]
    log = torchrun(
        tmp_path,
        *("-m", "cxrlt", "run", *args, "--loss", "explode-on-rank-1", "--device", "cpu"),
        *("--out", str(out)),
        succeed=False,
    )
    message = " ".join(log.split())
    assert "The training loss became nan at epoch 2, batch 1" in message  # rank 1
    assert "became non-finite on another process at epoch 2, batch 1" in message  # rank 0
    assert json.loads((out / "config.json").read_text())["status"] == "training"
