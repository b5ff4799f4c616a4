"""Findings of a new user's trial: a run's predictions cut off, a sweep collected where none
ran, ID columns spelled otherwise, file names in another letter case, a cache that no --size
makes fit, labels written as 1.0 or True. Refusals stop with exit code 2, the file, line or
parameter and the fix, and no partial output; what is accepted is counted in a note."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.cache import cache_bytes
from cxrlt.data.challenges import cxr_lt_2026
from cxrlt.data.synthetic import write_synthetic_cxr
from tests.bad_input.test_bad_input_csv import FAST as RUN
from tests.bad_input.test_bad_input_csv import challenge_folder, read
from tests.helpers.refusal import flat, refused
from tests.unit.outputs.test_report import make_run


@pytest.fixture(scope="session")
def clean_source(tmp_path_factory) -> Path:
    return write_synthetic_cxr(tmp_path_factory.mktemp("trial") / "s", n_images=80, size=32, seed=2)


@pytest.fixture
def data(tmp_path, clean_source) -> Path:
    return challenge_folder(tmp_path / "data", clean_source)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own, so that nothing decoded before hides a case."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(folder))
    return folder


def invoke(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


# ---- 1. a run's predictions cut off or edited ----------------------------------------------


def cut_off(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:3000])  # as `head -c 3000` leaves it


def blank_and_text(file: Path) -> None:
    lines = file.read_text().splitlines()
    for number, value in ((5, ""), (9, "n/a")):  # 1-based lines of the file
        fields = lines[number - 1].split(",")
        fields[-1] = value
        lines[number - 1] = ",".join(fields)
    file.write_text("\n".join(lines) + "\n")


def infinite(file: Path) -> None:
    frame = pd.read_csv(file, dtype={"ImageID": str})
    frame.loc[2, "logit:finding 1"] = np.inf
    frame.to_csv(file, index=False)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (cut_off, "the header has 25 fields (separated by commas), but line 14 has 13"),
        (
            blank_and_text,
            "2 rows hold values that are missing, not numbers or infinite (lines 5, 9",
        ),
        (infinite, "1 row holds values that are missing, not numbers or infinite (lines 4;"),
    ],
)
def test_report_of_a_run_whose_predictions_were_cut_off_or_edited(tmp_path, damage, problem):
    run = make_run(tmp_path / "run", n_images=300)
    file = run / "valid_predictions.csv"
    damage(file)
    refused(
        ["report", run],
        f"{file}:",
        problem,
        "was it cut off or edited? Restore it from a copy of the run",
        f"`cxrlt run --from-run {run} --out NEW_FOLDER`",
        untouched=[run],
    )


def test_compare_notes_which_run_cannot_be_read_again_and_why(tmp_path):
    first = make_run(tmp_path / "first")
    make_run(tmp_path / "second", seed=1)
    cut_off(first / "valid_predictions.csv")
    result = invoke("compare", first, tmp_path / "second", "--out", tmp_path / "table")
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert f"{first / 'valid_predictions.csv'}: the header has 25 fields" in output
    assert "but line 14 has 13" in output and "was it cut off or edited?" in output
    assert "No paired differences: the first run first cannot be read again." in output


# ---- 2. --collect where no sweep ran ------------------------------------------------------


def test_sweep_collect_in_a_folder_that_does_not_exist(tmp_path):
    folder = tmp_path / "sw_none"
    refused(
        ["sweep", "--out", folder, "--collect"],
        f"{folder} holds no sweep: a sweep folder holds the manifest sweep.json",
        f"{folder / 'sweep.json'} is missing",
        "Give the sweep's folder (the --out it ran with), or run the sweep first.",
        absent=[folder],
    )


def test_sweep_collect_in_a_folder_that_holds_no_sweep(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a sweep")
    refused(
        ["sweep", "--out", folder, "--collect"],
        f"{folder} holds no sweep",
        "Give the sweep's folder",
        untouched=[folder],
    )


def test_sweep_collect_before_any_cell_is_complete(tmp_path):
    folder = tmp_path / "planned"
    planned = invoke("sweep", "--out", folder, "--loss", "bce,asl", "--print-commands")
    assert planned.exit_code == 0, planned.output
    refused(
        ["sweep", "--out", folder, "--loss", "bce,asl", "--collect"],
        f"The sweep {folder} has no complete cell of this grid yet",
        "run the sweep first",
        untouched=[folder],
    )


# ---- 3. ID columns spelled otherwise --------------------------------------------------------


def rename_id(name: str, column: str):
    def breaker(data: Path) -> None:
        frame = read(data / name)
        frame.rename(columns={"ImageID": column}).to_csv(data / name, index=False)

    return breaker


@pytest.mark.parametrize(
    ("file", "column"),
    [
        ("removal.csv", "image_id"),
        ("removal.csv", "Image ID"),
        ("test_task1.csv", "imageid"),
        ("test_task1.csv", "IMAGE-ID"),
        ("train.csv", "image_id"),
    ],
)
def test_an_id_column_spelled_otherwise_gets_its_rename(data, cache, file, column):
    rename_id(file, column)(data)
    refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "32"],
        f"{data / file} has no 'ImageID' column (rename {column!r} to 'ImageID'?)",
        "rename them or pick the right file",
        untouched=[data],
        absent=[cache],
    )


# ---- 4. file names in another letter case -------------------------------------------------


def test_a_file_name_in_another_letter_case_is_named(data, cache, tmp_path):
    names = read(data / "train.csv")["ImageID"]
    renamed = [names[3], names[40]]
    for name in renamed:
        path = data / "images" / name
        path.rename(path.with_suffix(".PNG"))
    shown = [Path(name).with_suffix(".PNG").name for name in renamed]
    refused(
        ["run", "--dataset", "cxr-lt-2026", "--data", data, *RUN, "--out", tmp_path / "run"],
        "image file named in another letter case",
        f"2 rows — line 5 ({names[3]}: the folder holds {shown[0]}), line 42 ({names[40]}: "
        f"the folder holds {shown[1]})",
        "Names are case-sensitive: rename the files or fix the CSV.",
        absent=[tmp_path / "run", cache / "images"],
    )


def test_a_missing_file_with_no_other_case_beside_it_stays_missing(data, cache, tmp_path):
    name = read(data / "train.csv")["ImageID"][3]
    (data / "images" / name).unlink()
    output = refused(
        ["run", "--dataset", "cxr-lt-2026", "--data", data, *RUN, "--out", tmp_path / "run"],
        "image file missing from",
        f"line 5 ({name})",
        "Put the files there",
        absent=[tmp_path / "run"],
    )
    assert "another letter case" not in output


# ---- 5. a cache that does not fit ---------------------------------------------------------


def free_space(monkeypatch, free: int) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=free))


def test_a_cache_the_margin_keeps_from_fitting_says_no_size_helps(data, cache, monkeypatch):
    free_space(monkeypatch, 1 << 20)
    output = refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "32"],
        f"70 images at 32x32 px need 64.1 MiB in {cache / 'images'}",
        "(87.5 KiB of pixels and index, and 64.0 MiB kept free for the run directory and logs)",
        "a smaller --size would not make it fit (the margin of 64.0 MiB does not shrink with "
        "it): free some space, or set CXRLT_CACHE_DIR to a folder on a larger disk",
        absent=[cache / "images"],
    )
    assert "pass --size" not in output


def test_a_cache_too_large_for_the_disk_names_a_size_that_fits(data, cache, monkeypatch):
    free = 70 << 20
    free_space(monkeypatch, free)
    output = refused(
        ["prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "512"],
        f"70 images at 512x512 px need 81.5 MiB in {cache / 'images'}",
        "(17.5 MiB of pixels and index, and 64.0 MiB kept free",
        "only 70.0 MiB are free there",
        "or set CXRLT_CACHE_DIR to a folder on a larger disk",
        absent=[cache / "images"],
    )
    size = int(re.search(r"pass --size (\d+) or smaller", output).group(1))
    assert cache_bytes(70, size) <= free < cache_bytes(70, size + 1)  # 10 removed


# ---- 6. labels written as 1.0 or True -----------------------------------------------------


def test_labels_written_as_floats_or_words_are_read_and_counted(data):
    frame = read(data / "train.csv")
    classes = list(frame.columns[3:])
    expected = cxr_lt_2026(path=str(data)).labels
    frame.loc[4, classes[0]] = {"0": "0.0", "1": "1.0"}[frame.loc[4, classes[0]]]
    frame[classes[1]] = frame[classes[1]].map({"0": "False", "1": "True"})
    frame.to_csv(data / "train.csv", index=False)

    read_back = cxr_lt_2026(path=str(data))
    np.testing.assert_array_equal(read_back.labels, expected)
    note = next(n for n in read_back.notes if "label values in train.csv" in n)
    assert note.startswith(f"{1 + len(frame)} label values in train.csv are written as ")
    assert f"(first on line 2, column {classes[1]!r}), not as 0 and 1" in note
    shown = re.search(r"written as (.*) \(first on", note).group(1).split(", ")
    assert sorted(shown) == sorted(map(repr, {frame.loc[4, classes[0]], *frame[classes[1]]}))


def test_the_label_note_reaches_the_user(data, cache):
    frame = read(data / "train.csv")
    column = frame.columns[5]
    frame[column] = frame[column].map({"0": "0.0", "1": "1.0"})
    frame.to_csv(data / "train.csv", index=False)
    result = invoke("prepare", "--dataset", "cxr-lt-2026", "--data", data, "--size", "32")
    assert result.exit_code == 0, result.output
    assert f"Note: {len(frame)} label values in train.csv are written as" in flat(result.output)


def test_label_values_that_mean_neither_still_stop(data, tmp_path):
    frame = read(data / "train.csv")
    frame.loc[6, frame.columns[3]] = "2.0"
    frame.to_csv(data / "train.csv", index=False)
    refused(
        ["run", "--dataset", "cxr-lt-2026", "--data", data, *RUN, "--out", tmp_path / "run"],
        "label values other than 0 and 1",
        f"line 8 ({frame.loc[6, 'ImageID']}: {frame.columns[3]!r}='2.0')",
        "Map them to 0 or 1 first.",
        absent=[tmp_path / "run"],
    )
