"""Bad input: every case stops with a summary naming rows and a fix, or is skipped and listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.loaders import cxr_dataloaders
from cxrlt.data.synthetic import write_synthetic_cxr
from cxrlt.errors import CxrltError


@pytest.fixture(scope="session")
def clean_source(tmp_path_factory) -> Path:
    return write_synthetic_cxr(tmp_path_factory.mktemp("bad") / "s", n_images=80, size=32, seed=2)


@pytest.fixture
def folder(tmp_path, clean_source) -> Path:
    target = tmp_path / "data"
    shutil.copytree(clean_source, target)
    return target


def train_csv(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)


def image(folder: Path, row: int) -> Path:
    return folder / "images" / train_csv(folder)["ImageID"][row]


def load(folder: Path, **kwargs):
    return cxr_dataloaders("cxr-lt-2026", path=folder, size=32, bs=16, **kwargs)


def stop_message(folder: Path) -> str:
    with pytest.raises(CxrltError) as info:
        load(folder)
    return str(info.value)


def test_missing_image_file(folder):
    name = image(folder, 3).name
    image(folder, 3).unlink()
    message = stop_message(folder)
    assert f"image file missing from {folder / 'images'}: 1 row — line 5 ({name})" in message
    assert "nothing was trained" in message and "--skip-bad" in message


def test_truncated_image(folder):
    path = image(folder, 0)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    message = stop_message(folder)
    assert "image could not be decoded: 1 row — line 2" in message and path.name in message


def test_corrupt_image(folder):
    image(folder, 1).write_bytes(b"this is not a png at all" * 10)
    assert "image could not be decoded: 1 row — line 3" in stop_message(folder)


def test_unexpected_mode(folder):
    Image.fromarray(np.zeros((32, 32), bool)).convert("1").save(image(folder, 2))
    assert "line 4" in stop_message(folder)


def test_non_binary_labels(folder):
    frame = train_csv(folder)
    frame.loc[4, "Nodule"] = "-1"
    frame.loc[6, "Mass"] = ""
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert "label values other than 0 and 1" in message
    assert "line 6" in message and "'Nodule'='-1'" in message
    assert "line 8" in message and "'Mass'=''" in message


def test_duplicated_image_ids(folder):
    frame = train_csv(folder)
    frame = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert "duplicated ImageID: 2 rows — line 9" in message and "line 82" in message


def test_path_outside_the_data_folder(folder):
    frame = train_csv(folder)
    frame.loc[0, "ImageID"] = "../../etc/passwd"
    frame.to_csv(folder / "train.csv", index=False)
    assert "image path outside the image folder" in stop_message(folder)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("", "is empty"),
        ("a,b\n", "has a header but no rows"),
        ("a,b\n1,2\n", "no 'ImageID' column"),
    ],
)
def test_broken_csv_files(folder, content, fragment):
    (folder / "train.csv").write_text(content)
    message = stop_message(folder)
    assert fragment in message and "train.csv" in message


def test_many_problems_are_summarised_together_with_the_first_rows(folder):
    for row in range(8):
        image(folder, row).unlink()
    frame = train_csv(folder)
    frame.loc[20, "Normal"] = "2"
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert "9 of 80 rows have problems" in message
    assert "image file missing" in message and "8 rows" in message and "and 3 more" in message
    assert (
        "label values other than 0 and 1 (blank, -1 for uncertain, text): 1 row — line 22"
        in message
    )


def test_skip_bad_leaves_the_rows_out_and_lists_them(folder, tmp_path):
    image(folder, 3).unlink()
    image(folder, 5).write_bytes(b"garbage")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--dataset",
            "cxr-lt-2026",
            "--data",
            str(folder),
            "--size",
            "32",
            "--epochs",
            "1",
            "--bs",
            "16",
            "--skip-bad",
            "--no-pretrained",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Skipped 2 bad rows" in " ".join(result.output.split())
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(skipped["line"]) == [5, 7]
    assert set(skipped["problem"]) == {
        "image could not be decoded",
        f"image file missing from {(folder / 'images').resolve()}",
    }
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["n_train"] + config["data"]["n_valid"] == 78
    split = pd.read_csv(out / "split.csv", dtype=str)
    assert len(split) == 78 and set(split["split"]) == {"train", "valid"}


def test_without_skip_the_cli_stops_before_training(folder, tmp_path):
    image(folder, 3).unlink()
    result = CliRunner().invoke(
        app,
        ["run", "--dataset", "cxr-lt-2026", "--data", str(folder), "--out", str(tmp_path / "run")],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nothing was trained" in result.output and not (tmp_path / "run").exists()
