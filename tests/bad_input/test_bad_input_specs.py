"""Bad input, specs: a misspelt or malformed name, parameter or value in ``run`` or ``sweep``
stops before any work, names the problem and its fix, and leaves no output folder."""

from __future__ import annotations

import pytest

from cxrlt.pytest_plugin import TINY_DATA
from tests.helpers.refusal import refused

TINY = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "16"]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--loss", "focall"], ["Unknown loss 'focall'", "Closest: focal", "cxrlt list losses"]),
        (["--loss", "focal:gama=2"], ["has no parameter 'gama'", "Did you mean 'gamma'?"]),
        (
            ["--loss", "focal:gamma=abc"],
            ["Parameter 'gamma' of the loss 'focal' must be float, got 'abc'", "gamma: float"],
        ),
        (
            ["--post", "tau-norm:taus=[a,b]"],
            ["'taus' of the post-training step 'tau-norm' must be tuple[float, ...]"],
        ),
        (
            ["--post", "tau-norm:taus=[0.5,1"],
            ["Unbalanced brackets or quotes in 'tau-norm:taus=[0.5,1'", "close every ["],
        ),
        (["--loss", "focal:=2"], ["'=2' has no parameter name before '='", "write key=value"]),
        (["--loss", "focal:gamma=2,=3"], ["'=3' has no parameter name", "write key=value"]),
        (["--loss", "focal:gamma=1,gamma=2"], ["'gamma' is given twice", "keep one"]),
        (["--loss", "focal:gamma=[1,,2]"], ["Empty item in '[1,,2]'", "remove the stray comma"]),
        (["--loss", "bce,focal"], ["Expected one name in 'bce,focal'", "Give one name"]),
        (["--post", "platt:C=0"], ["'platt:C=0' cannot be built", "C must be > 0"]),
        (["--loss", "ldam:s=-1"], ["cannot be built", "s positive, got 0.5, -1"]),
    ],
)
def test_bad_input_spec_of_run_is_refused_before_any_work(tmp_path, args, fragments):
    out = tmp_path / "run"
    refused(["run", *TINY, "--no-pretrained", *args, "--out", out], *fragments, absent=[out])


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--losses", "bce,focal"], ["No such option: --losses", "--loss"]),
        (["--loss", "bce,bce"], ["--loss 'bce,bce' names an alternative twice", "remove"]),
        (["--post", "none,crt+"], ["has an empty step", "remove the stray '+'"]),
        (["--post", "none,,crt"], ["has an empty step", "remove the stray ','"]),
        (["--post", "none,crtt"], ["'crtt' is no post-training step", "cxrlt list post"]),
        (["--arch", "resnet18,nosuchnet"], ["Unknown backbone 'nosuchnet'", "cxrlt list"]),
        (["--loss", "bce,focal:gamma=x"], ["'gamma' of the loss 'focal' must be float"]),
        (["--post", "none,tau-norm:taus=[0.5,1"], ["Unbalanced brackets", "close every ["]),
        (["--seeds", "0"], ["--seeds is the number of seeds per cell, at least 1"]),
    ],
)
def test_bad_input_spec_of_sweep_is_refused_before_any_cell(tmp_path, args, fragments):
    out = tmp_path / "sweep"
    refused(["sweep", *TINY, *args, "--out", out], *fragments, absent=[out])
