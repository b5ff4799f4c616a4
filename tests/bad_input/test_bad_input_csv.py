"""Bad-input battery, CSV and label tables: each broken table given to `run`, `prepare` or
`evaluate` stops with exit code 2, names the file (and line) and the fix, and writes nothing.

Every case is one distinct bad input, made by a function that breaks a clean copy of a small
CXR-LT 2026 folder (or of a ``csv`` data set, for `evaluate`).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cxrlt.data.synthetic import write_synthetic_cxr
from tests.helpers.refusal import refused
from tests.unit.evaluation.test_evaluate import fake_run  # noqa: F401 (fixture)

FAST = ["--size", "32", "--epochs", "1", "--bs", "16", "--no-pretrained"]
TEST_IDS = slice(70, 80)  # the images the folder's removal and test lists name


@pytest.fixture(scope="session")
def clean_source(tmp_path_factory) -> Path:
    return write_synthetic_cxr(tmp_path_factory.mktemp("csv") / "s", n_images=80, size=32, seed=2)


def challenge_folder(target: Path, source: Path) -> Path:
    """A CXR-LT 2026 folder with train.csv, removal.csv, test_task1.csv and images/."""
    shutil.copytree(source, target)
    train = read(target / "train.csv")
    train.iloc[TEST_IDS, :3].to_csv(target / "removal.csv", index=False)
    train.iloc[TEST_IDS, :1].to_csv(target / "test_task1.csv", index=False)
    return target


@pytest.fixture
def folder(tmp_path, clean_source) -> Path:
    return challenge_folder(tmp_path / "data", clean_source)


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def edit_train(change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> Callable[[Path], None]:
    """A breaker that rewrites train.csv through ``change`` (in place, or returning a frame)."""

    def breaker(folder: Path) -> None:
        frame = read(folder / "train.csv")
        changed = change(frame)
        (frame if changed is None else changed).to_csv(folder / "train.csv", index=False)

    return breaker


def edit_lines(name: str, change: Callable[[list[str]], None]) -> Callable[[Path], None]:
    """A breaker that edits the text lines of one file."""

    def breaker(folder: Path) -> None:
        lines = (folder / name).read_text().splitlines()
        change(lines)
        (folder / name).write_text("\n".join(lines) + "\n")

    return breaker


def write(name: str, content: str) -> Callable[[Path], None]:
    """A breaker that replaces one file's text."""
    return lambda folder: (folder / name).write_text(content)


def _set(column: str, rows: list[int] | slice, value: str) -> Callable[[pd.DataFrame], None]:
    def change(frame: pd.DataFrame) -> None:
        frame.loc[rows, column] = value

    return change


def _append_field(lines: list[str]) -> None:
    lines[3] += ",1"


def _drop_two_fields(lines: list[str]) -> None:
    lines[6] = lines[6].rsplit(",", 2)[0]


def _semicolons_with_one_comma_row(folder: Path) -> None:
    frame = read(folder / "train.csv")
    frame.to_csv(folder / "train.csv", index=False, sep=";")
    lines = (folder / "train.csv").read_text().splitlines()
    lines[2] = lines[2].replace(";", ",")
    (folder / "train.csv").write_text("\n".join(lines) + "\n")


def _no_header(name: str) -> Callable[[Path], None]:
    return edit_lines(name, lambda lines: lines.pop(0))


def _rename(name: str, column: str, new: str) -> Callable[[Path], None]:
    """A breaker that renames a column in the header line of one file."""
    return edit_lines(name, lambda lines: lines.__setitem__(0, lines[0].replace(column, new)))


def _symlink_out(folder: Path) -> None:
    path = folder / "images" / read(folder / "train.csv")["ImageID"][4]
    elsewhere = folder.parent / "elsewhere"
    elsewhere.mkdir()
    path.rename(elsewhere / path.name)
    path.symlink_to(elsewhere / path.name)


def _two_patients_csv(folder: Path) -> None:
    read(folder / "train.csv")[["ImageID", "PatientID"]].to_csv(folder / "p.csv", index=False)


def _utf16_without_mark(folder: Path) -> None:
    text = (folder / "train.csv").read_text()
    (folder / "train.csv").write_bytes(text.encode("utf-16-le"))


def _headerless_patients_csv(folder: Path) -> None:
    _two_patients_csv(folder)
    _no_header("p.csv")(folder)


def _truncated_gzip(folder: Path) -> None:
    data = gzip.compress((folder / "train.csv").read_bytes()[:2000] * 5)
    (folder / "p.csv.gz").write_bytes(data[: len(data) // 2])


# (id, breaker, dataset parameters, fragments of the message: the problem and the fix)
RUN_CASES = [
    ("row-with-an-extra-field", edit_lines("train.csv", _append_field), "",
     ["train.csv: the header has 33 fields (separated by commas), but line 4 has 34",
      "fix or remove those lines"]),
    ("row-missing-fields", edit_lines("train.csv", _drop_two_fields), "",
     ["line 7 has 31", "Each row needs one value per column"]),
    ("semicolon-file-with-a-comma-row", _semicolons_with_one_comma_row, "",
     ["(separated by semicolons), but line 3 has 1",
      "a value that holds the separator must be in double quotes"]),
    ("train-csv-without-header", _no_header("train.csv"), "",
     ["train.csv has no header line", "Add a header line naming the columns (ImageID"]),
    ("removal-csv-without-ImageID", _rename("removal.csv", "ImageID", "Image"), "",
     ["removal.csv has no 'ImageID' column (rename 'Image' to 'ImageID'?)",
      "rename them or pick the right file"]),
    ("removal-csv-without-header", _no_header("removal.csv"), "",
     ["removal.csv has no header line", "Add a header line naming the columns (ImageID"]),
    ("test-csv-without-header", _no_header("test_task1.csv"), "",
     ["test_task1.csv has no header line", "Add a header line naming the columns (ImageID"]),
    ("test-csv-without-ImageID", _rename("test_task1.csv", "ImageID", "file"), "",
     ["test_task1.csv has no 'ImageID' column", "It needs the columns 'ImageID'"]),
    ("one-patient-for-all", edit_train(_set("PatientID", slice(None), "P1")), "",
     ["every row has the PatientID 'P1'",
      "split by image with --dataset cxr-lt-2026:split_by=image"]),
    ("patient-blank-everywhere", edit_train(_set("PatientID", slice(None), "")), "",
     ["the PatientID column is blank on every row", "Give each image its patient's ID"]),
    ("patient-blank-on-some-rows", edit_train(_set("PatientID", [1, 4], "")), "",
     ["blank PatientID: 2 rows — line 3", "line 6",
      "Fill in the PatientIDs, or split by image with --dataset cxr-lt-2026:split_by=image",
      "--skip-bad"]),
    ("unknown-label-column", edit_train(_set("Scoliosis", slice(None), "0")), "",
     ["'Scoliosis' is not a label of this data set",
      "list columns to ignore with the data set's ignore_columns parameter"]),
    ("misspelled-label", edit_train(lambda f: f.rename(columns={"cardiomegaly": "cardiomegally"})),
     "", ["'cardiomegaly' is missing (misspelled as 'cardiomegally'?)",
          "Rename them to the official spelling"]),
    ("duplicated-ImageID", edit_train(lambda f: pd.concat([f, f.iloc[[7]]])), "",
     ["duplicated ImageID: 2 rows — line 9", "line 82", "Keep one row per image"]),
    ("label-not-0-or-1", edit_train(_set("Nodule", [4], "-1")), "",
     ["label values other than 0 and 1", "line 6", "'Nodule'='-1'", "Map them to 0 or 1 first"]),
    ("no-training-csv", lambda folder: (folder / "train.csv").unlink(), "",
     ["has no training label file (CXRLT_2026_training.csv or train.csv)",
      "name it with --dataset cxr-lt-2026:train_csv=NAME"]),
    ("empty-training-csv", write("train.csv", ""), "",
     ["train.csv is empty", "it needs a header and one row per image"]),
    ("header-only", edit_lines("train.csv", lambda lines: lines.__delitem__(slice(1, None))), "",
     ["train.csv has a header but no rows", "one row per image below the header"]),
    ("utf16-without-byte-order-mark", _utf16_without_mark, "",
     ["train.csv is not a text CSV file", "Save it as a CSV file in UTF-8"]),
    ("column-named-twice", _rename("train.csv", "Kyphosis", "Mass"), "",
     ["the header names the column 'Mass' twice", "rename or remove one"]),
    ("image-symlink-leaving-the-folder", _symlink_out, "",
     ["image is a symlink that leaves the image folder", "links to",
      "Copy the files into the folder"]),
    ("image-path-with-dotdot", edit_train(_set("ImageID", [0], "../train.csv")), "",
     ["image path outside the image folder", "line 2 (../train.csv)", "(no '..', no absolute"]),
    ("train-csv-is-a-folder", lambda folder: None, ":train_csv=images",
     ["cxr-lt-2026:train_csv=images", "is a folder, where the training label CSV file is "
      "expected: name the file"]),
    ("patients-csv-with-split-by-image", _two_patients_csv, ":patients_csv=p.csv,split_by=image",
     ["patients_csv and split_by=image contradict each other", "leave one of them out"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "breaker, parameters, fragments",
    [pytest.param(*case[1:], id=case[0]) for case in RUN_CASES],
)
def test_run_refuses_a_bad_table(folder, tmp_path, breaker, parameters, fragments):
    breaker(folder)
    out = tmp_path / "run"
    args = ["run", "--dataset", f"cxr-lt-2026{parameters}", "--data", folder, "--out", out]
    refused([*args, *FAST], *fragments, untouched=[folder], absent=[out])


def test_run_refuses_data_pointing_at_a_file(folder, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--dataset", "cxr-lt-2026", "--data", folder / "train.csv", "--out", out]
    refused(
        [*args, *FAST],
        f"--data {folder / 'train.csv'} is a file, where a folder is expected",
        "point --data at the folder that holds CXRLT_2026_training.csv or train.csv and the "
        "images/ folder",
        f"({folder}, if it holds this file)",
        absent=[out],
    )


PREPARE_CASES = [
    ("ragged-removal-list", edit_lines("removal.csv", _append_field), "",
     ["removal.csv: the header has 3 fields", "line 4 has 4", "fix or remove those lines"]),
    ("empty-test-list", write("test_task1.csv", "\n\n"), "",
     ["test_task1.csv is empty", "it needs a header and one row per image"]),
    ("header-only-removal-list", write("removal.csv", "ImageID,StudyDate_DICOM,PatientID\n"), "",
     ["removal.csv has a header but no rows", "one row per image below the header"]),
    ("truncated-gzip-patients-csv", _truncated_gzip, ":patients_csv=p.csv.gz",
     ["p.csv.gz cannot be read", "check that it is complete"]),
    ("patients-csv-without-header", _headerless_patients_csv, ":patients_csv=p.csv",
     ["p.csv has no header line", "(ImageID, PatientID, ...)"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "breaker, parameters, fragments",
    [pytest.param(*case[1:], id=case[0]) for case in PREPARE_CASES],
)
def test_prepare_refuses_a_bad_table(folder, tmp_path, monkeypatch, breaker, parameters, fragments):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(cache))
    breaker(folder)
    args = ["prepare", "--dataset", f"cxr-lt-2026{parameters}", "--data", folder, "--size", "32"]
    refused(args, *fragments, untouched=[folder], absent=[cache])


def _one_patient_labels(folder: Path) -> None:
    frame = read(folder / "labels.csv")
    frame["PatientID"] = "P1"
    frame.to_csv(folder / "labels.csv", index=False)


@pytest.fixture
def other(folder) -> Path:
    """A second labelled set for `evaluate`, as a ``csv`` data set: labels.csv naming images
    by a ``path`` column, with a patient column."""
    frame = read(folder / "train.csv").rename(columns={"ImageID": "path"})
    frame["path"] = "images/" + frame["path"]
    frame.drop(columns=["StudyDate_DICOM"]).to_csv(folder / "labels.csv", index=False)
    return folder


EVALUATE_CASES = [
    ("no-image-column", _rename("labels.csv", "path", "ImageID"), "",
     ["labels.csv has no 'path' column", "rename them or pick the right file"]),
    ("ragged-labels-csv", edit_lines("labels.csv", _drop_two_fields), "",
     ["labels.csv: the header has 32 fields", "line 7 has 30", "fix or remove those lines"]),
    ("labels-csv-without-header", _no_header("labels.csv"), "",
     ["labels.csv has no header line", "Add a header line naming the columns (path"]),
    ("one-patient-in-the-other-set", _one_patient_labels, "",
     ["every row has the PatientID 'P1'", "--dataset csv:split_by=image"]),
    ("labels-csv-is-a-folder", lambda folder: None, ":csv=images",
     ["images is a folder, where a CSV file is expected", "name the file"]),
]  # fmt: skip


@pytest.mark.parametrize(
    "breaker, parameters, fragments",
    [pytest.param(*case[1:], id=case[0]) for case in EVALUATE_CASES],
)
def test_evaluate_refuses_a_bad_table(
    fake_run,  # noqa: F811 (the fixture imported above)
    other,
    tmp_path,
    breaker,
    parameters,
    fragments,
):
    breaker(other)
    out = tmp_path / "scored"
    dataset = f"csv:patient_column=PatientID{parameters.replace(':', ',')}"
    args = ["evaluate", fake_run, "--dataset", dataset, "--data", other, "--out", out]
    refused([*args, "--device", "cpu"], *fragments, untouched=[fake_run], absent=[out])
