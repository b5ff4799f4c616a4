"""Distributed data-parallel training: two CPU ranks over gloo, launched by torchrun on one
"node" or as two single-process nodes meeting at a c10d rendezvous."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
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
from cxrlt.training.tracking import FINISHED
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


def launch_env(tmp_path: Path) -> dict[str, str]:
    """The environment of launched ranks: no launcher variables of ours, CPU only, one thread,
    a fresh image cache (every rank that starts builds it at once)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    return env | {
        "CXRLT_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    }


def launch(*launcher_args: str, env: dict[str, str]) -> subprocess.Popen:
    """Start ``python -m torch.distributed.run`` in its own session, so that a hung rank can be
    killed with its launcher instead of outliving the test."""
    command = [sys.executable, "-m", "torch.distributed.run", *launcher_args]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(launched: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    """stdout and stderr of a launch once it ended (killed with its ranks after ``timeout``)."""
    try:
        return launched.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launched.pid, signal.SIGKILL)
        return launched.communicate()


def tail(stdout: str, stderr: str) -> str:
    """The ends of a launch's output, for an assertion's message."""
    return f"{stdout[-3000:]}\n{stderr[-6000:]}"


def torchrun(tmp_path: Path, *args: str, succeed: bool = True) -> str:
    """Run ``args`` under torchrun with 2 CPU ranks; returns the log (asserting success)."""
    address = ("--master_addr", "127.0.0.1", "--master_port", str(_free_port()))
    start = time.monotonic()
    launched = launch("--nproc_per_node", "2", *address, *args, env=launch_env(tmp_path))
    log = f"{time.monotonic() - start:.0f} s\n{tail(*finish(launched))}"
    assert (launched.returncode == 0) == succeed, log
    return log


# torchrun reads an abbreviation of its own options anywhere in the line, and `--log` could be
# several (an "ambiguous option" error): after `--` everything is the program's.
CXRLT_RUN = ("-m", "cxrlt", "--", "run")


def assert_run_written_once(out: Path, stdout: str, *, epochs: int) -> None:
    """A complete run whose files only one process wrote: one announcement in ``stdout`` (all
    processes' output), one row per epoch in log.csv and in the csv tracker's table (a second
    writer would append its own), no temporary file left, the same weights on every rank."""
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete"
    checksums = config["distributed"]["weights_checksums"]
    assert config["distributed"]["world_size"] == 2 and len(set(checksums)) == 1, checksums
    assert stdout.count("Run written to") == 1
    lines = (out / "log.csv").read_text().splitlines()
    epochs_logged = [line.split(",")[0] for line in lines[1:]]
    assert lines[0].startswith("epoch,") and epochs_logged == [str(e) for e in range(epochs)]
    with open(out / "tracking.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["value"] for row in rows if row["kind"] == "status"] == [FINISHED]
    epoch_rows = [(row["step"], row["name"]) for row in rows if row["kind"] == "epoch"]
    assert epoch_rows and len(epoch_rows) == len(set(epoch_rows)), epoch_rows
    assert len({step for step, _ in epoch_rows}) == epochs, epoch_rows
    assert json.loads((out / "metrics.json").read_text())["n_images"] == config["data"]["n_valid"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.suffix == ".pt"]


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
    args += ["--post", "crt:epochs=1,temp-scale", "--log", "csv", "--device", "cpu"]
    log = torchrun(tmp_path, *CXRLT_RUN, *args, "--out", str(out))
    assert_run_written_once(out, log, epochs=2)  # rank 1 prints and writes nothing
    assert json.loads((out / "config.json").read_text())["post"][0]["name"] == "crt"


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


def two_node_args(port: int, run_id: str, **rdzv_conf: int) -> list[str]:
    """torchrun's options for one of two single-process nodes meeting at a c10d rendezvous on
    this machine (the first node's address, in a real cluster)."""
    conf = ["--rdzv_conf", ",".join(f"{k}={v}" for k, v in rdzv_conf.items())] if rdzv_conf else []
    return [
        *("--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d"),
        *("--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", run_id, *conf),
    ]


TINY_RUN = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "16"]


@needs_gloo
@pytest.mark.slow
def test_two_nodes_meet_at_a_c10d_rendezvous_and_only_global_rank_0_writes(tmp_path):
    """Two torchrun "nodes" of one process each, sharing --out and the cache (a shared file
    system): each node's process has local rank 0, but only global rank 0 acts as the main one."""
    out = tmp_path / "run"
    nodes_args = two_node_args(_free_port(), f"cxrlt-test-{uuid.uuid4().hex}")
    run_args = [*CXRLT_RUN, *TINY_RUN, "--log", "csv", "--device", "cpu"]
    env = launch_env(tmp_path) | {"LOGLEVEL": "INFO"}  # torchrun logs each node's ranks
    nodes = [launch(*nodes_args, *run_args, "--out", str(out), env=env) for _ in range(2)]
    outputs = [finish(node) for node in nodes]
    logs = "\n".join(tail(*output) for output in outputs)
    assert [node.returncode for node in nodes] == [0, 0], logs

    # Ranks as torchrun's agents report them: each node one process of local rank 0.
    reported = [re.search(r"global_ranks=\[(\d+)\]", stderr) for _, stderr in outputs]
    assert all(reported) and all("local_ranks=[0]" in stderr for _, stderr in outputs), logs
    global_ranks = [int(match.group(1)) for match in reported if match]
    assert sorted(global_ranks) == [0, 1], global_ranks
    main, other = (outputs[global_ranks.index(r)][0] for r in (0, 1))

    assert_run_written_once(out, main + other, epochs=1)
    assert "Run written to" in main and "mAP" in main
    assert "mAP" not in other and "epoch" not in other, other  # no table, no report
    # One cache shared by both nodes, decoded once: the other waited on its lock, then read it.
    images = [p for p in (tmp_path / "cache" / "images").iterdir() if p.is_dir()]
    assert len(images) == 1 and (images[0] / "done.npy").exists()
    assert sum(stderr.count("Image cache: decoding") for _, stderr in outputs) == 1, logs


@needs_gloo
@pytest.mark.slow
def test_a_node_that_never_comes_ends_the_rendezvous_with_a_timeout(tmp_path):
    out = tmp_path / "run"
    args = two_node_args(_free_port(), f"cxrlt-test-{uuid.uuid4().hex}", join_timeout=2)
    alone = launch(*args, *CXRLT_RUN, *TINY_RUN, "--out", str(out), env=launch_env(tmp_path))
    stdout, stderr = finish(alone, timeout=120)  # killed as hung long before the default 600 s
    assert alone.returncode not in (0, -signal.SIGKILL), tail(stdout, stderr)
    assert "RendezvousTimeoutError" in stderr, tail(stdout, stderr)
    assert not out.exists()  # no rank ever started
