"""Which images are views of one study, as each data set's files say (for ``study-views``):
PadChest's own label file for CXR-LT 2026, a patient's day without it, MIMIC's study_id, and
the columns a user names for a generic CSV."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.challenges import PADCHEST_LABELS
from cxrlt.data.labels import CXR_LT_2023_CLASSES, CXR_LT_2026_CLASSES, CXR_LT_2026_META_COLUMNS
from cxrlt.data.synthetic import write_synthetic_cxr
from cxrlt.data.table import PROJECTION_COLUMN, STUDY_COLUMN
from cxrlt.errors import CxrltError
from cxrlt.post.study_views import StudyViews
from tests.unit.data.test_datasets import build, csv_folder, mimic_folder

MANGLED = ("1.90E+38", "2.10E+38")  # what a spreadsheet made of PadChest's PatientIDs
PADCHEST_SPELLING = {"PA": "PA", "AP": "AP_horizontal", "LATERAL": "L"}


@pytest.fixture(scope="module")
def two_views(tmp_path_factory) -> Path:
    """Embedded two-view studies: train.csv names each image's study and projection."""
    folder = tmp_path_factory.mktemp("src") / "s"
    return write_synthetic_cxr(folder, n_images=40, size=32, seed=1, n_test=6, views=2)


def _truth(source: Path) -> pd.DataFrame:
    """Every image's true patient, day, study and projection (test images: one study per
    patient, all of one day)."""
    train = pd.read_csv(source / "train.csv", dtype=str)
    test = pd.read_csv(source / "test_task1.csv", dtype=str)
    test["PatientID"], test["StudyDate_DICOM"] = "P" + test["StudyID"], "20200101"
    columns = ["ImageID", "StudyDate_DICOM", "PatientID", "StudyID", "Projection"]
    return pd.concat([train[columns], test[columns]], ignore_index=True).set_index("ImageID")


def padchest_layout(source: Path, folder: Path, *, mangle: bool = True) -> Path:
    """A CXR-LT 2026 folder as the organisers ship it (only ImageID, StudyDate_DICOM and
    PatientID, spreadsheet-mangled unless ``mangle`` is false), with the test images on the
    removal and test lists, from the two-view ``source``."""
    shutil.copytree(source / "images", folder / "images")
    train = pd.read_csv(source / "train.csv", dtype=str)
    truth = _truth(source)
    test = truth.loc[pd.read_csv(source / "test_task1.csv", dtype=str)["ImageID"]].reset_index()
    meta = list(CXR_LT_2026_META_COLUMNS)
    for table in (train, test):
        if mangle:
            table["PatientID"] = [MANGLED[i % 2] for i in range(len(table))]
    train[[*meta, *CXR_LT_2026_CLASSES]].to_csv(folder / "CXRLT_2026_training.csv", index=False)
    test[meta].to_csv(folder / "Removal.csv", index=False)
    lines = [",".join(meta) + "," * 30]
    lines += [",".join(row) + "," * 30 for row in test[meta].itertuples(index=False)]
    (folder / "CXRLT_2026_TEST_ALL_TASK1.csv").write_text("\n".join(lines) + "\n")
    return folder


def padchest_label_file(source: Path, path: Path, *, leave_out: int = 0) -> Path:
    """PadChest's own label file (gzipped) for the images of ``source``, in PadChest's
    spelling of projections, with a free-text column that holds commas; the first
    ``leave_out`` training images left out."""
    truth = _truth(source).iloc[leave_out:].reset_index()
    truth["Projection"] = truth["Projection"].map(PADCHEST_SPELLING)
    truth["ImageDir"], truth["Report"] = "0", "cardiomegalia, derrame pleural"
    truth.to_csv(path, index=False)
    return path


@pytest.fixture
def shipped_views(two_views, tmp_path) -> Path:
    return padchest_layout(two_views, tmp_path / "cxrlt26")


def _by_image(data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return data.frame.set_index("ImageID"), data.test.set_index("ImageID")


def test_padchest_label_file_gives_every_image_its_study_and_projection(
    two_views, shipped_views, tmp_path
):
    labels = padchest_label_file(two_views, tmp_path / f"{PADCHEST_LABELS}.gz")
    data = build("cxr-lt-2026", path=str(shipped_views), patients_csv=str(labels))
    truth = _truth(two_views)
    for images in _by_image(data):
        expected = truth.loc[images.index]
        assert images[STUDY_COLUMN].tolist() == expected["StudyID"].tolist()
        assert images[PROJECTION_COLUMN].tolist() == expected["Projection"].tolist()
        assert images.groupby(STUDY_COLUMN).size().max() == 2  # both views of a study
    assert len(data) == 40 and len(data.test) == 6
    assert not any("study" in note for note in data.notes)
    StudyViews(method="weighted").check(SimpleNamespace(dls=SimpleNamespace(data=data)))


def test_a_patient_file_without_studies_restores_the_patients_days(
    two_views, shipped_views, tmp_path
):
    """A patients_csv of ImageID and PatientID only: each image's study is its restored
    patient's day, the test images' too (their list's PatientIDs are mangled as well)."""
    truth = _truth(two_views)
    patients = tmp_path / "patients.csv"
    truth.reset_index()[["ImageID", "PatientID"]].to_csv(patients, index=False)
    data = build("cxr-lt-2026", path=str(shipped_views), patients_csv=str(patients))
    for images in _by_image(data):
        expected = truth.loc[images.index]
        day = expected["PatientID"] + "/" + expected["StudyDate_DICOM"]
        assert images[STUDY_COLUMN].tolist() == day.tolist()


def test_images_missing_from_the_label_file_are_counted(two_views, shipped_views, tmp_path):
    labels = padchest_label_file(two_views, tmp_path / "labels.csv", leave_out=2)
    data = build("cxr-lt-2026", path=str(shipped_views), patients_csv=str(labels))
    assert (data.frame[STUDY_COLUMN] == "").sum() == 2  # their PatientIDs are spreadsheet numbers
    [note] = [n for n in data.notes if "gives no study" in n]
    assert "CXRLT_2026_training.csv gives no study for 2 of its 40 images" in note
    assert "patients_csv" not in note  # it was given


def test_spreadsheet_patient_ids_make_no_studies_and_study_views_names_the_fix(shipped_views):
    data = build("cxr-lt-2026", path=str(shipped_views))
    assert STUDY_COLUMN not in data.frame and STUDY_COLUMN not in data.test
    with pytest.raises(CxrltError) as info:
        StudyViews().check(SimpleNamespace(dls=SimpleNamespace(data=data)))
    assert "name no study" in str(info.value) and "patients_csv=PATH" in str(info.value)


def test_intact_patient_ids_make_a_study_of_one_patients_day(two_views, tmp_path):
    folder = padchest_layout(two_views, tmp_path / "cxrlt26", mangle=False)
    data = build("cxr-lt-2026", path=str(folder))
    truth = _truth(two_views)
    for images in _by_image(data):
        expected = truth.loc[images.index]
        day = expected["PatientID"] + "/" + expected["StudyDate_DICOM"]
        assert images[STUDY_COLUMN].tolist() == day.tolist()
        assert PROJECTION_COLUMN not in images  # the challenge's files do not give it
    # one patient's day is the study: its two views share it, and no other image does
    pairs = data.frame.groupby(STUDY_COLUMN)["ImageID"].apply(lambda ids: truth.loc[ids, "StudyID"])
    assert pairs.groupby(level=0).nunique().max() == 1


def test_mimic_studies_and_view_positions(tmp_path):
    folder = mimic_folder(tmp_path, CXR_LT_2023_CLASSES)
    train = pd.read_csv(folder / "train.csv", dtype=str)
    train["ViewPosition"] = ["PA", "LL"] * 6
    train.to_csv(folder / "train.csv", index=False)
    data = build("cxr-lt-2023", path=str(folder))
    assert data.frame[STUDY_COLUMN].tolist() == train["study_id"].tolist()
    assert data.frame[PROJECTION_COLUMN].tolist() == ["PA", "LATERAL"] * 6


def test_a_csv_data_set_reads_the_study_columns_it_is_told(tmp_path):
    folder = csv_folder(tmp_path)
    table = pd.read_csv(folder / "labels.csv", dtype=str)
    table["exam"], table["view"] = "e1", ["pa", "lateral"][: len(table)]
    table.to_csv(folder / "labels.csv", index=False)
    named = {"patient_column": "patient", "study_column": "exam", "projection_column": "view"}
    data = build("csv", path=str(folder), **named)
    assert data.frame[STUDY_COLUMN].tolist() == ["e1"] * len(table)
    assert data.frame[PROJECTION_COLUMN].tolist() == ["PA", "LATERAL"][: len(table)]
    assert "exam" not in data.classes and "view" not in data.classes
    with pytest.raises(CxrltError, match="has no 'study' column"):
        build("csv", path=str(folder), patient_column="patient", study_column="study")
    with pytest.raises(CxrltError, match="needs patient_column=NAME too"):
        build("csv", path=str(folder), date_column="day")


@pytest.mark.slow
def test_a_run_on_the_shipped_layout_merges_each_test_study(two_views, tmp_path, cxrlt_cache):
    folder = padchest_layout(two_views, tmp_path / "cxrlt26")
    labels = padchest_label_file(two_views, tmp_path / "labels.csv.gz")
    dataset = f"cxr-lt-2026:patients_csv={labels},split_by=patient"
    args = [
        "run",
        "--dataset",
        dataset,
        "--data",
        str(folder),
        "--arch",
        "resnet18:pretrained=False",
    ]
    args += ["--size", "32", "--epochs", "1", "--bs", "16", "--post", "study-views:method=weighted"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "run" / "submission.csv", dtype={"ImageID": str})
    studies = _truth(two_views).loc[written["ImageID"], "StudyID"].to_numpy()
    spread = written.drop(columns="ImageID").groupby(studies).agg(lambda s: s.max() - s.min())
    assert len(spread) == 3 and spread.to_numpy().max() == 0


def test_a_label_file_that_disagrees_with_itself_names_the_image_and_column(
    two_views, shipped_views, tmp_path
):
    labels = padchest_label_file(two_views, tmp_path / "labels.csv")
    table = pd.read_csv(labels, dtype=str)
    twice = table.iloc[[0]].assign(Projection="AP_horizontal")
    pd.concat([table, twice]).to_csv(labels, index=False)
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(shipped_views), patients_csv=str(labels))
    assert f"the ImageID {table['ImageID'][0]} has rows with different Projection" in str(
        info.value
    )
