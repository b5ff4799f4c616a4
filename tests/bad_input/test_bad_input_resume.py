"""Bad input to ``cxrlt run --resume``: each is refused before any data is read, naming the
folder or file and the fix, and the run folder stays byte for byte as it was."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from fastcore.foundation import L

from cxrlt.outputs.run_dir import CHECKPOINT
from tests.helpers.refusal import refused
from tests.unit.training.test_checkpoint_safety import RunsCode, run_folder

RESUME_STOP = "Start the run again with --overwrite"


@pytest.fixture
def run(tmp_path) -> Path:
    return run_folder(tmp_path / "run")


def resume(folder: Path, *fragments: str, **expect) -> str:
    return refused(["run", "--resume", folder], *fragments, **expect)


def test_bad_input_resume_of_a_folder_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-run"
    resume(missing, str(missing), "config.json is missing", "check the path", absent=[missing])


def test_bad_input_resume_of_a_file(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"weights")
    resume(file, str(file), "config.json is missing", "check the path", untouched=[file])


def test_bad_input_resume_of_a_folder_that_holds_no_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("ImageID,PatientID\na.png,1\n")
    resume(data, str(data), "config.json is missing", "check the path", untouched=[data])


def test_bad_input_resume_of_a_folder_whose_config_cxrlt_did_not_write(tmp_path):
    model = tmp_path / "hf-model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["BertModel"]}')
    resume(
        model, "was not written by `cxrlt run`", "give the folder of a cxrlt run", untouched=[model]
    )


def test_bad_input_resume_of_a_complete_run(run):
    (run / "metrics.json").write_text('{"mAP": 0.3}')
    resume(run, f"{run} is a complete run", "nothing to resume", untouched=[run])


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"epoch,train_loss\n0,0.25\n", id="a-csv-file"),
    ],
)
def test_bad_input_resume_of_an_unreadable_checkpoint(run, damage):
    buffer = run / "whole.pt"
    torch.save({"epochs_done": 1, "model": {"w": torch.zeros(64)}}, buffer)
    (run / CHECKPOINT).write_bytes(damage(buffer.read_bytes()))
    buffer.unlink()
    resume(
        run,
        f"{run / CHECKPOINT} cannot be read",
        RESUME_STOP,
        untouched=[run],
    )


def test_bad_input_resume_of_a_checkpoint_that_is_a_folder(run):
    (run / CHECKPOINT).mkdir()
    resume(
        run,
        f"{run / CHECKPOINT} cannot be read",
        RESUME_STOP,
        untouched=[run],
    )


def test_bad_input_resume_of_a_checkpoint_that_runs_a_shell_command(run, tmp_path):
    marker = tmp_path / "shell-ran"

    class RunsShell:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"epochs_done": 1, "opt": RunsShell()}, run / CHECKPOINT)
    resume(
        run,
        "was not loaded",
        "system",
        "Nothing in it was run",
        RESUME_STOP,
        untouched=[run],
        absent=[marker],
    )


def test_bad_input_resume_of_a_plain_pickle_that_runs_code(run, tmp_path):
    """Not torch's zip format: the raw pickle torch's legacy reader takes."""
    marker = tmp_path / "pickle-ran"
    (run / CHECKPOINT).write_bytes(pickle.dumps({"model": RunsCode(marker)}))
    resume(
        run,
        "was not loaded",
        "not in the form cxrlt writes checkpoints in",
        "Nothing in it was run",
        RESUME_STOP,
        untouched=[run],
        absent=[marker],
    )


def test_bad_input_resume_of_a_checkpoint_of_an_older_cxrlt(run):
    """As cxrlt wrote them before safe loading: NumPy's generator state as an array, fastai's
    hyper-parameters in an ``L`` with NumPy floats."""
    old = {
        "epochs_done": 1,
        "n_epoch": 2,
        "model": {"w": torch.zeros(2)},
        "opt": {"state": [], "hypers": L([{"lr": np.float64(1e-3)}])},
        "rng": {"python": random.getstate(), "numpy": np.random.get_state()},
        "loaders": [1, 0],
        "callbacks": {},
        "best": {},
    }
    torch.save(old, run / CHECKPOINT)
    resume(
        run,
        "was not loaded",
        "as checkpoints of cxrlt versions before safe loading do",
        RESUME_STOP,
        "its options are in config.json",
        untouched=[run],
    )


def test_bad_input_resume_of_weights_saved_as_a_checkpoint(run):
    torch.save({"layer.weight": torch.zeros(2, 2)}, run / CHECKPOINT)
    resume(
        run,
        "is not a checkpoint of `cxrlt run`",
        "it lacks epochs_done, n_epoch, model, opt, scaler",
        RESUME_STOP,
        untouched=[run],
    )


@pytest.mark.parametrize(
    ("option", "value"), [("--epochs", "9"), ("--out", "elsewhere"), ("--lr", "1e-2")]
)
def test_bad_input_resume_with_an_option_it_does_not_take(run, option, value):
    refused(
        ["run", "--resume", run, option, value],
        option,
        "--resume continues a run with the options it started with",
        untouched=[run],
    )
