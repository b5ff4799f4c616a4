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


def load(folder: Path, dataset: str = "cxr-lt-2026", **kwargs):
    return cxr_dataloaders(dataset, path=folder, size=32, bs=16, **kwargs)


def stop_message(folder: Path) -> str:
    with pytest.raises(CxrltError) as info:
        load(folder)
    return str(info.value)


# What every stop message ends with: the way out for the rows it lists.
SKIP_ADVICE = "Fix them, or pass --skip-bad to leave these rows out"
DECODE_FIX = "Replace the files or remove their rows."


def test_missing_image_file(folder):
    name = image(folder, 3).name
    image(folder, 3).unlink()
    message = stop_message(folder)
    assert f"image file missing from {folder / 'images'}: 1 row — line 5 ({name})" in message
    assert "Put the files there, point --data at the right folder, or remove the rows" in message
    assert "nothing was trained" in message and SKIP_ADVICE in message


def test_truncated_image(folder):
    path = image(folder, 0)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    message = stop_message(folder)
    assert "image could not be decoded: 1 row — line 2" in message and path.name in message
    assert "truncated" in message and DECODE_FIX in message and SKIP_ADVICE in message


def test_corrupt_image(folder):
    path = image(folder, 1)
    path.write_bytes(b"this is not a png at all" * 10)
    message = stop_message(folder)
    assert "image could not be decoded: 1 row — line 3" in message and path.name in message
    assert "cannot decode the image" in message and "corrupt" in message
    assert DECODE_FIX in message and SKIP_ADVICE in message


def test_unexpected_mode(folder):
    Image.fromarray(np.zeros((32, 32), bool)).convert("1").save(image(folder, 2))
    message = stop_message(folder)
    assert "image could not be decoded: 1 row — line 4" in message
    assert "unsupported image mode '1'" in message and "greyscale" in message
    assert DECODE_FIX in message and SKIP_ADVICE in message


def test_non_binary_labels(folder):
    frame = train_csv(folder)
    frame.loc[4, "Nodule"] = "-1"
    frame.loc[6, "Mass"] = ""
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert "label values other than 0 and 1" in message and "Map them to 0 or 1 first" in message
    assert "line 6" in message and "'Nodule'='-1'" in message
    assert "line 8" in message and "'Mass'=''" in message


def test_duplicated_image_ids(folder):
    frame = train_csv(folder)
    frame = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert "duplicated ImageID: 2 rows — line 9" in message and "line 82" in message
    assert "Keep one row per image" in message


def test_path_outside_the_data_folder(folder):
    frame = train_csv(folder)
    frame.loc[0, "ImageID"] = "../../etc/passwd"
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert (
        "image path outside the image folder" in message and "line 2 (../../etc/passwd)" in message
    )
    assert "relative paths inside the image folder (no '..', no absolute path)" in message


def test_a_symlink_that_leaves_the_image_folder_is_named_as_such(folder, tmp_path):
    path = image(folder, 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path.rename(elsewhere / path.name)
    path.symlink_to(elsewhere / path.name)
    message = stop_message(folder)
    assert "image is a symlink that leaves the image folder" in message
    assert f"line 6 ({path.name}: links to {elsewhere / path.name})" in message
    assert "Copy the files into the folder, or point --data at the folder" in message


def test_a_symlink_inside_the_image_folder_is_followed(folder):
    first, second = image(folder, 0), image(folder, 1)
    second.unlink()
    second.symlink_to(first.name)
    assert len(load(folder).data) == 80


def test_spaces_around_image_ids_are_removed_and_counted(folder):
    frame = train_csv(folder)
    padded = f" {frame.loc[2, 'ImageID']} "
    frame.loc[2, "ImageID"] = padded
    frame.loc[9, "ImageID"] = f"{frame.loc[9, 'ImageID']}\t"
    frame.to_csv(folder / "train.csv", index=False)
    data = load(folder).data
    assert len(data) == 80 and data.image_ids[2] == padded.strip()
    note = f"Removed the spaces around 2 ImageIDs in train.csv (first on line 4: {padded!r})."
    assert note in data.notes


@pytest.mark.parametrize(
    "content, fragments",
    [
        ("", ["is empty", "it needs a header and one row per image"]),
        ("ImageID,PatientID\n", ["has a header but no rows", "one row per image below the header"]),
        (
            "a,b\n1,2\n",
            ["no 'ImageID' or 'PatientID' column", "rename them or pick the right file"],
        ),
        ("x.png,1\ny.png,0\n", ["has no header line", "Add a header line naming the columns"]),
    ],
)
def test_broken_csv_files(folder, content, fragments):
    (folder / "train.csv").write_text(content)
    message = stop_message(folder)
    assert "train.csv" in message and all(fragment in message for fragment in fragments)


def test_ragged_rows_are_named_by_line(folder):
    lines = (folder / "train.csv").read_text().splitlines()
    lines[3] += ",1"
    lines[6] = lines[6].rsplit(",", 2)[0]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    message = stop_message(folder)
    assert "the header has 33 fields (separated by commas), but line 4 has 34, line 7 has 31" in (
        message
    )
    assert "fix or remove those lines" in message


def test_blank_lines_keep_the_file_line_numbers(folder):
    lines = (folder / "train.csv").read_text().splitlines()
    lines.insert(2, "")
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    image(folder, 3).unlink()
    assert "1 row — line 6 (" in stop_message(folder)


@pytest.mark.parametrize(
    "separator, encoding, note",
    [
        (";", "utf-8", "train.csv separates its columns with semicolons, not commas"),
        ("\t", "utf-8", "train.csv separates its columns with tabs, not commas"),
        (",", "utf-8-sig", "train.csv is UTF-8 with a byte-order mark"),
        (",", "utf-16", "train.csv is UTF-16"),
        (",", "cp1252", "train.csv is not UTF-8 (byte 0xe9 on line 2): read it as Windows-1252"),
    ],
)
def test_other_separators_and_encodings_are_read_with_a_note(folder, separator, encoding, note):
    frame = train_csv(folder)
    frame.loc[0, "StudyDate_DICOM"] = "José"  # an accent, which only cp1252 writes otherwise
    frame.to_csv(folder / "train.csv", index=False, sep=separator, encoding=encoding)
    data = load(folder).data
    assert note in " ".join(data.notes)
    assert data.image_ids == frame["ImageID"].tolist()
    assert (data.labels == frame[list(data.classes)].astype(int).to_numpy()).all()


def test_utf16_without_a_byte_order_mark_stops(folder):
    (folder / "train.csv").write_bytes((folder / "train.csv").read_text().encode("utf-16-le"))
    message = stop_message(folder)
    assert "is not a text CSV file" in message and "Save it as a CSV file in UTF-8" in message


def test_blank_patient_ids_stop_naming_the_lines_unless_skipped(folder):
    frame = train_csv(folder)
    frame.loc[[1, 4], "PatientID"] = ["", "  "]
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert "blank PatientID: 2 rows — line 3" in message and "line 6" in message
    assert (
        "Fill in the PatientIDs, or split by image with --dataset cxr-lt-2026:split_by=image"
        in (message)
    )
    dls = load(folder, skip_bad=True)
    assert len(dls.data) == 78 and sorted(dls.skipped["line"]) == [3, 6]


@pytest.mark.parametrize(
    "patients, what",
    [
        (lambda n: ["P1"] * n, "every row has the PatientID 'P1'"),
        (lambda n: [""] * n, "the PatientID column is blank on every row"),
        (lambda n: ["P1"] * (n - 3) + [""] * 3, "every row has the PatientID 'P1' or none (3"),
    ],
)
def test_a_single_patient_stops_before_any_image_is_read(folder, patients, what, monkeypatch):
    monkeypatch.setattr("cxrlt.data.loaders.prepare_images", _no_decoding)
    frame = train_csv(folder)
    frame["PatientID"] = patients(len(frame))
    frame.to_csv(folder / "train.csv", index=False)
    message = stop_message(folder)
    assert what in message and "Give each image its patient's ID" in message
    assert "split by image with --dataset cxr-lt-2026:split_by=image" in message


def _no_decoding(*args, **kwargs):
    raise AssertionError("images were decoded before the table was checked")


def test_split_by_image_is_explicit_noted_and_recorded(folder):
    frame = train_csv(folder)
    frame["PatientID"] = "P1"
    frame.loc[5, "PatientID"] = ""
    frame.to_csv(folder / "train.csv", index=False)
    dls = load(folder, dataset="cxr-lt-2026:split_by=image")
    assert dls.data.provenance["split_by"] == "image"
    assert list(dls.data.patients) == dls.data.image_ids
    assert 0 < dls.is_valid.sum() < 80
    assert "Each image counts as its own patient (split_by=image), as asked" in " ".join(
        dls.data.notes
    )


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
        ["run", "--dataset", "cxr-lt-2026", "--data", str(folder), "--out", str(tmp_path / "run")]
        + ["--no-pretrained"],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "nothing was trained" in result.output and not (tmp_path / "run").exists()
