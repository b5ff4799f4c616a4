"""Runs that survive: kill and resume, a NaN stop that keeps the last good checkpoint, and
best-epoch selection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from fastai.learner import Learner
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.outputs.run_dir import CHECKPOINT
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.workflows import run as workflow
from tests.helpers.fake_plugins import exploding_loss_plugin

RUN = ["--dataset", TINY_DATA, "--size", "32", "--bs", "32", "--seed", "5", "--lr", "5e-3"]
RUN4 = [*RUN, "--epochs", "4"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["run", *args])


def flat(result) -> str:
    """The CLI's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def read(run, name: str):
    return json.loads((run / name).read_text())


def start_and_kill_after_first_checkpoint(out, *options: str) -> None:
    """Start ``cxrlt run`` in a process and kill it (SIGKILL) once an epoch is checkpointed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cxrlt", "run", *RUN4, *options, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not (out / CHECKPOINT).exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [(), ("--loss", "ldam-drw:start=2", "--ema", "0.9", "--select", "last")],
    ids=["bce", "ldam-drw-ema"],
)
def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path, options):
    killed = tmp_path / "killed"
    start_and_kill_after_first_checkpoint(killed, *options)
    assert not (killed / "metrics.json").exists()
    done = torch.load(killed / CHECKPOINT, weights_only=True)["epochs_done"]
    assert 1 <= done < 4

    result = invoke("--resume", str(killed))
    assert result.exit_code == 0, result.output
    result = invoke(*RUN4, *options, "--out", str(tmp_path / "whole"))
    assert result.exit_code == 0, result.output

    assert read(killed, "metrics.json") == read(tmp_path / "whole", "metrics.json")
    resumed_log = pd.read_csv(killed / "log.csv")
    whole_log = pd.read_csv(tmp_path / "whole" / "log.csv")
    assert list(resumed_log["epoch"]) == [0, 1, 2, 3]
    pd.testing.assert_series_equal(resumed_log["mAP"], whole_log["mAP"])
    assert read(killed, "config.json")["status"] == "complete"
    assert not [p.name for p in killed.iterdir() if p.suffix == ".pt"]


@pytest.mark.slow
def test_a_resumed_run_trains_only_the_remaining_epochs_and_keeps_the_earlier_log_rows(
    tmp_path, monkeypatch
):
    """Resuming must not retrain from epoch 0 (on the CPU that would end the same): the
    epochs fastai trains are counted, and the log's earlier rows stay byte for byte."""
    killed = tmp_path / "killed"
    start_and_kill_after_first_checkpoint(killed)
    done = torch.load(killed / CHECKPOINT, weights_only=True)["epochs_done"]
    earlier = (killed / "log.csv").read_bytes().splitlines(keepends=True)[: 1 + done]
    assert len(earlier) == 1 + done  # the header and a row per epoch the checkpoint covers

    trained = []
    train_one_epoch = Learner._do_epoch_train

    def counted(learn):
        trained.append(learn.epoch)
        return train_one_epoch(learn)

    monkeypatch.setattr(Learner, "_do_epoch_train", counted)
    result = invoke("--resume", str(killed))
    assert result.exit_code == 0, result.output

    assert trained == list(range(done, 4))
    log = (killed / "log.csv").read_bytes().splitlines(keepends=True)
    assert log[: 1 + done] == earlier and len(log) == 1 + 4


@pytest.mark.slow
def test_a_run_killed_after_its_last_epoch_resumes_to_the_same_result(tmp_path, monkeypatch):
    """The checkpoint covers every epoch when the kill comes during evaluation."""
    whole = tmp_path / "whole"
    assert invoke(*RUN, "--epochs", "2", "--out", str(whole)).exit_code == 0

    def killed_while_evaluating(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "calibrate", killed_while_evaluating)
    cut = tmp_path / "cut"
    invoke(*RUN, "--epochs", "2", "--out", str(cut))
    assert torch.load(cut / CHECKPOINT, weights_only=True)["epochs_done"] == 2
    monkeypatch.undo()
    result = invoke("--resume", str(cut))
    assert result.exit_code == 0, result.output
    assert read(cut, "metrics.json") == read(whole, "metrics.json")
    assert read(cut, "config.json")["training"] == read(whole, "config.json")["training"]


def test_a_reweighting_start_after_the_last_epoch_is_refused(tmp_path):
    result = invoke(*RUN, "--epochs", "2", "--loss", "drw:start=2", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "would never switch on" in flat(result)


NAN_PLUGIN = exploding_loss_plugin("explode", "self.epoch >= 1")


@pytest.mark.slow
def test_a_nan_loss_stops_naming_epoch_and_batch_and_keeps_the_checkpoint(
    tmp_path, cxrlt_fake_plugin
):
    cxrlt_fake_plugin("explode", NAN_PLUGIN)
    out = tmp_path / "nan"
    result = invoke(*RUN4, "--loss", "explode", "--out", str(out))
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "became nan at epoch 2, batch 1 of" in message
    assert "checkpoint after epoch 1 is kept" in message
    assert torch.load(out / CHECKPOINT, weights_only=True)["epochs_done"] == 1
    assert not (out / "metrics.json").exists()


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("best") / "run"
    result = invoke(*RUN, "--epochs", "3", "--lr", "3e-2", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_the_best_epoch_by_validation_map_is_kept(three_epochs):
    log = pd.read_csv(three_epochs / "log.csv")
    training = read(three_epochs, "config.json")["training"]
    best = int(log["mAP"].to_numpy().argmax()) + 1
    assert training["best_epoch"] == training["kept_epoch"] == best
    assert training["best_valid_mAP"] == pytest.approx(log["mAP"].max())
    assert (three_epochs / "last.safetensors").exists() == (best != 3)


@pytest.mark.slow
def test_select_last_keeps_the_last_epoch(tmp_path):
    out = tmp_path / "last"
    result = invoke(*RUN, "--epochs", "2", "--select", "last", "--out", str(out))
    assert result.exit_code == 0, result.output
    log = pd.read_csv(out / "log.csv")
    assert read(out, "config.json")["training"]["kept_epoch"] == 2
    assert read(out, "metrics.json")["mAP"] == pytest.approx(log["mAP"].iloc[-1])
    assert not (out / "last.safetensors").exists()
