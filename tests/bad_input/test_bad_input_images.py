"""Bad images and a bad image cache for ``cxrlt prepare`` and ``cxrlt run``: each stops with
exit code 2, the reason and the fix, and no partial output."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlt.data.synthetic import write_synthetic_cxr
from tests.helpers.refusal import refused

ROOT = os.geteuid() == 0
RUN = ["--size", "32", "--epochs", "1", "--bs", "16", "--no-pretrained"]


@pytest.fixture(scope="session")
def clean_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-images") / "s"
    return write_synthetic_cxr(folder, n_images=80, size=32, seed=2)


@pytest.fixture
def data(tmp_path, clean_source) -> Path:
    target = tmp_path / "data"
    shutil.copytree(clean_source, target)
    return target


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own, so that nothing decoded before hides a case."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(folder))
    return folder


def image_ids(data: Path) -> list[str]:
    return pd.read_csv(data / "train.csv", dtype=str)["ImageID"].tolist()


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def not_an_image(path: Path) -> None:
    path.write_text("ImageID,PatientID\nthis is a CSV saved under a .png name\n")


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def blank(path: Path) -> None:
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(path)


def bilevel(path: Path) -> None:
    Image.fromarray(np.arange(32 * 32).reshape(32, 32) % 3 == 0).save(path)


def unreadable(path: Path) -> None:
    path.chmod(0)


def fake_dicom(data: Path, row: int) -> Path:
    """Row ``row`` points at a .dcm file that holds no DICOM at all."""
    frame = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    frame.loc[row, "ImageID"] = "scan.dcm"
    frame.to_csv(data / "train.csv", index=False)
    path = data / "images" / "scan.dcm"
    path.write_bytes(b"garbage, not a DICOM file " * 20)
    return path


BAD_IMAGES = [
    pytest.param(truncated, "cannot decode the image", id="truncated-png"),
    pytest.param(not_an_image, "cannot decode the image", id="not-an-image"),
    pytest.param(zero_bytes, "cannot decode the image", id="zero-bytes"),
    pytest.param(
        blank, "the image has a single value (0) in every pixel (a blank export?)", id="blank"
    ),  # fmt: skip
    pytest.param(bilevel, "unsupported image mode '1'", id="bilevel"),
    pytest.param(
        unreadable,
        "cannot read the file (Permission denied)",
        id="unreadable",
        marks=pytest.mark.skipif(ROOT, reason="root reads any file"),
    ),
]


@pytest.mark.parametrize("spoil, reason", BAD_IMAGES)
def test_prepare_names_each_bad_image_its_reason_and_the_fix(data, cache, spoil, reason):
    name = image_ids(data)[6]
    spoil(data / "images" / name)
    refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "32", "--workers", "1"],
        "1 of 80 images could not be decoded (the others are cached)",
        f"CSV line 8 ({name}):",
        f".png: {reason}",  # after the path, which the console may wrap anywhere
        "Fix or replace these files and run `cxrlt prepare` again",
        "--skip-bad",
        untouched=[data / "train.csv"],  # the images: one may be unreadable
    )


@pytest.mark.parametrize("spoil, reason", BAD_IMAGES)
def test_run_stops_on_each_bad_image_before_training(data, cache, tmp_path, spoil, reason):
    name = image_ids(data)[11]
    spoil(data / "images" / name)
    out = tmp_path / "run"
    refused(
        ["run", "--dataset", "cxr-lt-2026", "--data", data, *RUN, "--out", out],
        f"image could not be decoded: 1 row — line 13 ({name}:",
        f".png: {reason}",
        "nothing was trained",
        "--skip-bad",
        untouched=[data / "train.csv"],  # the images: one may be unreadable
        absent=[out],
    )


def test_a_dcm_file_that_is_not_dicom(data, cache, tmp_path):
    fake_dicom(data, 4)
    out = tmp_path / "run"
    refused(
        ["run", "--dataset", "cxr-lt-2026", "--data", data, *RUN, "--out", out],
        "line 6 (scan.dcm:",
        "dcm: not a DICOM file (no DICM header); replace it or remove its row.",
        "--skip-bad",
        absent=[out],
    )


@pytest.mark.parametrize("size", ["0", "7", "4097", "100000"])
def test_prepare_refuses_a_size_out_of_range_before_anything_is_written(data, cache, size):
    refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", size],
        f"--size {size} is out of range: the image size must be between 8 and 4096 pixels",
        "pass for example --size 224",
        absent=[cache],
    )


def test_prepare_refuses_a_file_as_the_cache_folder(data, cache):
    cache.write_text("a file, not a folder")
    refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "32"],
        f"{cache} is a file, not a folder",
        f"CXRLT_CACHE_DIR is set to {cache}",
        "Set CXRLT_CACHE_DIR to a folder you can write",
        untouched=[cache],
    )


@pytest.mark.skipif(ROOT, reason="root writes anywhere")
def test_prepare_refuses_a_read_only_cache_folder(data, cache):
    cache.mkdir(mode=0o555)
    refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "32"],
        f"{cache} is not writable (no permission, or a read-only file system)",
        "Set CXRLT_CACHE_DIR to a folder you can write",
        untouched=[cache],
    )


@pytest.fixture
def small_disk(monkeypatch):
    """A disk with 1 MiB free: less than any cache needs (its margin alone is 64 MiB)."""
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1 << 20))


def test_prepare_refuses_a_cache_larger_than_the_free_space(data, cache, small_disk):
    refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "512"],
        "Not enough disk space for the image cache: 80 images at 512x512 px need 84.0 MiB",
        "only 1.0 MiB are free there",
        "a smaller --size would not make it fit (the margin of 64.0 MiB does not shrink with "
        "it): free some space, or set CXRLT_CACHE_DIR to a folder on a larger disk",
        absent=[cache / "images"],
    )


def test_run_refuses_a_cache_larger_than_the_free_space_before_decoding(
    data, cache, tmp_path, small_disk
):
    out = tmp_path / "run"
    refused(
        ["run", "--dataset", "cxr-lt-2026", "--data", data, *RUN, "--out", out],
        "Not enough disk space for the image cache: 80 images at 32x32 px",
        "a smaller --size would not make it fit",
        absent=[cache / "images", out],
    )
