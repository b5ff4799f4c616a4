"""Checkpoints run no code: written in the types torch's safe loader reads, read with it, and
a file holding anything else (one crafted to run code, an older cxrlt's) refused unread."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from fastcore.foundation import L

from cxrlt import __version__
from cxrlt.errors import CxrltError
from cxrlt.options import RunOptions
from cxrlt.outputs.run_dir import CHECKPOINT
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.training.checkpoint import rng_states, safe_form, set_rng_states
from tests.helpers.refusal import refused


def run_folder(folder: Path) -> Path:
    """The folder of a run interrupted while training, as ``cxrlt run`` leaves it (its
    config; the checkpoint is each test's own)."""
    options = RunOptions(dataset=TINY_DATA, size=32, epochs=2, bs=16, pretrained=False)
    saved = {**dataclasses.asdict(options), "out": str(folder)}
    folder.mkdir(parents=True)
    config = {"cxrlt_version": __version__, "status": "training", "options": saved}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


class RunsCode:
    """Unpickled, writes ``marker``: what a checkpoint from a stranger could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_a_checkpoint_crafted_to_run_code_is_refused_and_nothing_runs(tmp_path):
    control = tmp_path / "control.pt"
    torch.save({"model": RunsCode(tmp_path / "ran-when-unpickled")}, control)
    torch.load(control, weights_only=False)
    assert (tmp_path / "ran-when-unpickled").exists()  # the payload works when unpickled

    run = run_folder(tmp_path / "run")
    torch.save({"epochs_done": 1, "model": RunsCode(tmp_path / "ran")}, run / CHECKPOINT)
    refused(
        ["run", "--resume", run],
        f"{run / CHECKPOINT} was not loaded",
        "Python objects (first: exec)",
        "Nothing in it was run",
        "Start the run again with --overwrite",
        untouched=[run],
        absent=[tmp_path / "ran"],
    )


def test_the_safe_form_of_a_state_reads_back_with_the_safe_loader(tmp_path):
    weights = OrderedDict(w=torch.arange(3.0))
    weights._metadata = {"": {"version": 2}}
    state = {
        "hypers": L([{"lr": np.float64(0.25), "mom": 0.9}]),  # fastai's, one-cycle's NumPy lr
        "counts": np.array([3, 1], dtype=np.int32),
        "pair": (1, "a"),
        "weights": weights,
        "none": None,
    }
    path = tmp_path / "state.pt"
    torch.save(safe_form(state), path)
    loaded = torch.load(path, weights_only=True)

    assert loaded["hypers"] == [{"lr": 0.25, "mom": 0.9}]
    assert type(loaded["hypers"][0]["lr"]) is float
    assert torch.equal(loaded["counts"], torch.tensor([3, 1], dtype=torch.int32))
    assert loaded["pair"] == (1, "a") and loaded["none"] is None
    assert torch.equal(loaded["weights"]["w"], weights["w"])
    assert loaded["weights"]._metadata == weights._metadata


def test_the_safe_form_refuses_what_the_safe_loader_could_not_read_naming_where():
    state = {"callbacks": {"my_callback": {"started": datetime(2026, 1, 1)}}}
    with pytest.raises(CxrltError) as info:
        safe_form(state, where="the checkpoint")
    message = str(info.value)
    assert "the checkpoint['callbacks']['my_callback']['started']" in message
    assert "datetime.datetime" in message and "state_dict return those" in message


def test_every_random_generator_goes_on_where_the_checkpoint_left_it(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leaves NumPy a cached Gaussian, part of its state
    torch.save(rng_states(), tmp_path / "rng.pt")

    def draws():
        return random.random(), np.random.randn(), np.random.rand(), torch.rand(2).tolist()

    expected = draws()
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draws() == expected
