"""Bad input to ``cxrlt run`` and ``cxrlt predict`` found before any data is read: numbers,
every part's values (built once on stand-ins), the paths written to."""

from __future__ import annotations

import json

import pytest

from cxrlt.options import RunOptions
from cxrlt.registry import resolve
from cxrlt.workflows import data
from cxrlt.workflows.preflight import build_on_meta
from cxrlt.workflows.specs import check_options
from tests.helpers.refusal import refused

TINY = ["--dataset", "synthetic:n_images=160,size=32", "--size", "32", "--epochs", "1"]


@pytest.fixture(autouse=True)
def no_data_is_read(monkeypatch):
    """Every case here must stop before the data set is loaded."""

    def read(*args, **kwargs):
        raise AssertionError("the data was read before the bad input was found")

    monkeypatch.setattr(data, "run_dataloaders", read)


@pytest.mark.parametrize(
    "option, value, fragments",
    [
        ("--lr", "nan", ["--lr must be a positive number, got nan", "e.g. 2e-3"]),
        ("--lr", "-1", ["--lr must be a positive number, got -1.0"]),
        ("--lr", "0", ["--lr must be a positive number, got 0.0"]),
        ("--backbone-lr", "inf", ["--backbone-lr must be a positive number, got inf"]),
        ("--epochs", "0", ["--epochs must be at least 1, got 0"]),
        ("--bs", "0", ["--bs must be at least 1, got 0"]),
        ("--size", "4", ["--size 4 is out of range", "--size 224"]),
        ("--size", "100000", ["--size 100000 is out of range", "--size 224"]),
        ("--valid-frac", "1.5", ["--valid-frac is the share of patients held out", "e.g. 0.2"]),
        ("--valid-frac", "0", ["--valid-frac is the share of patients held out", "got 0.0"]),
        ("--ema", "1", ["--ema is a decay between 0 (off) and 1, like 0.999; got 1.0"]),
        ("--grad-clip", "-1", ["--grad-clip is the largest gradient norm", "got -1.0"]),
        ("--grad-clip", "nan", ["--grad-clip is the largest gradient norm", "got nan"]),
        ("--precision", "fp8", ["--precision 'fp8' is not one of auto, 32, bf16, fp16"]),
        ("--select", "oracle", ["--select 'oracle' is not one of", "cross-fit"]),
    ],
)
def test_numbers_out_of_range(tmp_path, option, value, fragments):
    out = tmp_path / "run"
    refused(["run", *TINY, option, value, "--out", out], *fragments, absent=[out])


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--loss", "ldam:s=-1"], ["The loss 'ldam:", "s positive, got 0.5, -1"]),
        (["--loss", "asl:gamma_neg=-1"], ["The loss 'asl:", "must be at least 0"]),
        (["--loss", "focal:alpha=2"], ["alpha must be in [0, 1]"]),
        (["--loss", "focal:gamma=-1"], ["gamma must be at least 0 (0: plain BCE)"]),
        (["--loss", "ldam-drw:start=5"], ["start=5", "1 epochs", "choose a start below --epochs"]),
        (["--sampler", "repeat-factor:t=0"], ["repeat-factor needs t > 0"]),
        (["--head", "csra:heads=3"], ["'heads' of the head 'csra' must be", "got 3"]),
        (["--head", "csra:lam=-1"], ["csra lam", "must be >= 0"]),
        (["--post", "platt:C=0"], ["'platt:C=0' cannot be built: C must be > 0, got 0"]),
        (["--arch", "resnet18:weights=/no/such/file.safetensors"], ["does not exist"]),
        (
            ["--arch", "resnet18:drop_path_rate=oops"],
            ["'drop_path_rate' of the backbone 'resnet18' must be float, got 'oops'", "Accepted:"],
        ),
        (
            ["--post", "crt,tta,temp-scael"],
            ["'temp-scael' is no post-training step", "Closest: temp-scale"],
        ),
        (["--device", "tpu"], ["--device 'tpu' is not a device", "use auto, cpu, cuda"]),
    ],
)
def test_parts_that_refuse_their_values_stop_before_the_data(tmp_path, args, fragments):
    out = tmp_path / "run"
    refused(["run", *TINY, *args, "--out", out], *fragments, absent=[out])


def test_a_large_backbone_is_checked_without_allocating_it():
    """convnext_large (about 200 M parameters) is built on the meta device: name and
    parameters checked, no memory taken."""
    model = build_on_meta(resolve("backbones", "convnext_large:pretrained=False"))
    parameters = list(model.parameters())
    assert {p.device.type for p in parameters} == {"meta"}
    assert sum(p.numel() for p in parameters) > 190_000_000


def test_from_run_into_its_own_folder(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    options = {"dataset": "synthetic:n_images=160,size=32", "size": 32}
    config = {"cxrlt_version": "0.1", "status": "complete", "options": options}
    (base / "config.json").write_text(json.dumps(config))
    (base / "model.safetensors").write_bytes(b"weights")
    refused(
        ["run", "--from-run", base, "--post", "temp-scale", "--out", base / "again"],
        "is inside the run --from-run",
        "choose a new folder",
        untouched=[base],
    )


def test_values_bounded_by_the_class_count_are_left_to_the_real_build():
    """The stand-ins have more classes than any data set, so a head's n_groups that is
    right for the real data is not refused before it is read."""
    options = RunOptions(dataset="synthetic:n_images=160,size=32", head="ml-decoder:n_groups=10")
    specs = check_options(options)
    assert specs.head.params["n_groups"] == 10


def test_data_folder_that_does_not_exist(tmp_path):
    out = tmp_path / "run"
    refused(
        ["run", *TINY, "--dataset", "cxr-lt-2026", "--data", tmp_path / "nowhere", "--out", out],
        f"--data {tmp_path / 'nowhere'} does not exist",
        "give the folder that holds",
        absent=[out],
    )


def test_out_is_a_file(tmp_path):
    out = tmp_path / "run"
    out.write_text("notes")
    refused(["run", *TINY, "--out", out], "is a file, not a folder", untouched=[out])


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_out_is_a_folder_of_other_files(tmp_path, overwrite):
    """Written among the user's files, a run would have them cleared by a later --overwrite."""
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"\xff\xd8")
    refused(
        ["run", *TINY, "--out", out, *overwrite],
        "holds files and no run (no config.json)",
        "choose a new or empty folder",
        untouched=[out],
    )


def test_out_below_a_file(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("notes")
    refused(
        ["run", *TINY, "--out", blocker / "run"],
        f"{blocker} is a file, not a folder",
        untouched=[blocker],
    )


def test_image_cache_below_a_file(tmp_path, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("notes")
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(blocker / "cache"))
    out = tmp_path / "run"
    refused(
        ["run", *TINY, "--out", out],
        "The image cache folder",
        "Set CXRLT_CACHE_DIR to a folder you can write",
        untouched=[blocker],
        absent=[out],
    )


def test_predict_out_is_a_folder(tmp_path):
    folder = tmp_path / "preds"
    folder.mkdir()
    refused(
        ["predict", tmp_path / "no-run", "--out", folder],
        "is a folder: give a file's path",
        untouched=[folder],
    )


def test_predict_batch_size(tmp_path):
    out = tmp_path / "sub.csv"
    refused(
        ["predict", tmp_path, "--bs", "0", "--out", out], "--bs must be at least 1", absent=[out]
    )
