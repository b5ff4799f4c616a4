"""The challenge data sets and the generic CSV: layouts, label checks, removal list, splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlt.data.labels import (
    CXR_LT_2023_CLASSES,
    CXR_LT_2024_CLASSES,
    CXR_LT_2024_GOLD_CLASSES,
    CXR_LT_2026_CLASSES,
    CXR_LT_2026_TASK2_CLASSES,
)
from cxrlt.data.split import patient_split
from cxrlt.data.synthetic import write_synthetic_cxr
from cxrlt.errors import CxrltError
from cxrlt.registry import resolve
from cxrlt.spec import Spec


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory) -> Path:
    return write_synthetic_cxr(tmp_path_factory.mktemp("src") / "s", n_images=60, size=32, seed=1)


@pytest.fixture
def cxrlt26(tmp_path, synthetic_source) -> Path:
    """A CXR-LT 2026 folder with the short file names: train.csv, images/, removal and test CSVs."""
    folder = tmp_path / "cxrlt26"
    shutil.copytree(synthetic_source, folder)
    train = pd.read_csv(folder / "train.csv", dtype=str)
    train.iloc[:5, :3].to_csv(folder / "removal.csv", index=False)
    test = train.iloc[50:].copy()
    test[list(CXR_LT_2026_CLASSES)] = ""
    test.to_csv(folder / "test_task1.csv", index=False)
    train.iloc[:50].to_csv(folder / "train.csv", index=False)
    return folder


def build(name: str, path: str | None, **params):
    return resolve("datasets", Spec(name, params)).build(path=path)


def test_cxr_lt_2026_applies_the_removal_list_and_keeps_the_test_images(cxrlt26):
    data = build("cxr-lt-2026", path=str(cxrlt26))
    assert data.classes == CXR_LT_2026_CLASSES
    assert len(data) == 45 and len(data.problems) == 0
    assert "Removed 5 images listed in removal.csv" in " ".join(data.notes)
    removed = set(pd.read_csv(cxrlt26 / "removal.csv", dtype=str)["ImageID"])
    assert not removed & set(data.image_ids)
    assert len(data.test) == 10 and all(Path(p).is_file() for p in data.test["path"])
    assert data.zero_shot_classes == CXR_LT_2026_TASK2_CLASSES


def test_cxr_lt_2026_without_a_removal_list_says_so(cxrlt26):
    (cxrlt26 / "removal.csv").unlink()
    data = build("cxr-lt-2026", path=str(cxrlt26))
    assert len(data) == 50 and "No removal list found" in " ".join(data.notes)


def test_real_data_sets_need_a_folder():
    with pytest.raises(CxrltError, match="needs --data PATH"):
        build("cxr-lt-2026", path=None)
    with pytest.raises(CxrltError, match="no such folder"):
        build("cxr-lt-2026", path="/no/such/folder")


def mimic_folder(tmp_path: Path, classes, extra=()) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        fpath = f"files/p10/p{1000 + i // 2}/s{i}/{i:04d}.jpg"
        (tmp_path / fpath).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(tmp_path / fpath)
        labels = {c: int(rng.random() < 0.3) for c in (*classes, *extra)}
        rows.append(
            {
                "fpath": fpath,
                "subject_id": str(1000 + i // 2),
                "study_id": str(i),
                "dicom_id": f"d{i:04d}",
                **labels,
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    return tmp_path


def test_cxr_lt_2024_reads_mimic_paths_and_patients(tmp_path):
    folder = mimic_folder(tmp_path, CXR_LT_2024_CLASSES)
    data = build("cxr-lt-2024", path=str(folder), train_csv="train.csv")
    assert data.classes == CXR_LT_2024_CLASSES and len(data) == 12 and not data.problems
    assert data.image_ids[0] == "d0000" and data.patients[1] == "1000"
    gold = build("cxr-lt-2024", path=str(folder), train_csv="train.csv", subset="gold")
    assert gold.classes == CXR_LT_2024_GOLD_CLASSES and "Normal" in gold.classes


def test_cxr_lt_2023_has_26_labels(tmp_path):
    data = build("cxr-lt-2023", path=str(mimic_folder(tmp_path, CXR_LT_2023_CLASSES)))
    assert data.classes == CXR_LT_2023_CLASSES and len(data) == 12


def csv_folder(folder: Path) -> Path:
    """A ``csv`` data set: two images, a patient column and two labels."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / "b.png")
    pd.DataFrame(
        {"path": ["a.png", "b.png"], "patient": ["p1", "p2"], "Effusion": [1, 0], "Mass": [0, 1]}
    ).to_csv(folder / "labels.csv", index=False)
    return folder


def test_generic_csv_takes_every_other_column_as_a_label(tmp_path):
    data = build("csv", path=str(csv_folder(tmp_path)), patient_column="patient")
    assert data.classes == ("Effusion", "Mass")
    assert data.labels.tolist() == [[1, 0], [0, 1]] and list(data.patients) == ["p1", "p2"]
    assert data.provenance["split_by"] == "patient"


def test_generic_csv_without_a_patient_column_says_each_image_is_its_own_patient(tmp_path):
    data = build("csv", path=str(csv_folder(tmp_path)), ignore_columns=["patient"])
    assert list(data.patients) == ["a.png", "b.png"] and data.provenance["split_by"] == "image"
    [note] = [n for n in data.notes if "its own patient" in n]
    assert "No patient column named" in note and "csv:patient_column=NAME" in note


@pytest.mark.parametrize("name", ["cxr-lt-2023", "cxr-lt-2024"])
def test_split_by_image_is_shared_by_the_mimic_sets(tmp_path, name):
    classes = CXR_LT_2023_CLASSES if name == "cxr-lt-2023" else CXR_LT_2024_CLASSES
    folder = mimic_folder(tmp_path, classes)
    train = pd.read_csv(folder / "train.csv", dtype=str)
    train["subject_id"] = "10000032"
    train.to_csv(folder / "train.csv", index=False)
    with pytest.raises(CxrltError, match=f"--dataset {name}:split_by=image"):
        build(name, path=str(folder), train_csv="train.csv")
    data = build(name, path=str(folder), train_csv="train.csv", split_by="image")
    assert list(data.patients) == data.image_ids and data.provenance["split_by"] == "image"


def test_patients_csv_and_split_by_image_contradict(cxrlt26):
    (cxrlt26 / "p.csv").write_text("ImageID,PatientID\na.png,1\n")
    with pytest.raises(CxrltError, match="patients_csv and split_by=image contradict"):
        build("cxr-lt-2026", path=str(cxrlt26), patients_csv="p.csv", split_by="image")


def test_data_pointing_at_a_file_names_its_folder(cxrlt26):
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(cxrlt26 / "train.csv"))
    assert "is a file, where a folder is expected" in str(info.value)
    assert f"({cxrlt26}, if it holds this file)" in str(info.value)


def test_misspelled_missing_and_extra_label_columns_are_named(cxrlt26):
    train = pd.read_csv(cxrlt26 / "train.csv", dtype=str)
    train = train.rename(columns={"cardiomegaly": "cardiomegally"}).drop(columns=["Mass"])
    train["Scoliosis"] = "0"
    train.to_csv(cxrlt26 / "train.csv", index=False)
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(cxrlt26))
    message = str(info.value)
    assert "'cardiomegaly' is missing (misspelled as 'cardiomegally'?)" in message
    assert "'Mass' is missing" in message
    assert "'Scoliosis' is not a label of this data set" in message


def test_spreadsheet_patient_ids_give_a_warning(cxrlt26):
    train = pd.read_csv(cxrlt26 / "train.csv", dtype=str)
    train["PatientID"] = ["1.90E+38"] * 30 + ["2.10E+38"] * 20
    train.to_csv(cxrlt26 / "train.csv", index=False)
    data = build("cxr-lt-2026", path=str(cxrlt26))
    [note] = [n for n in data.notes if "spreadsheet" in n]
    assert "1.90E+38" in note and "only 2 patient groups" in note
    assert data.patients[0] == "1.90E+38"  # read as text, never as a float


def test_split_is_grouped_stratified_and_deterministic():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(300), 3).astype(str)
    labels = (rng.random((900, 6)) < [0.5, 0.2, 0.1, 0.05, 0.02, 0.01]).astype(np.uint8)
    valid = patient_split(patients, labels, valid_frac=0.2, seed=4)
    assert not set(patients[valid]) & set(patients[~valid])
    assert 0.15 < valid.mean() < 0.25
    assert (labels[valid].sum(axis=0) > 0).all()  # even the rarest class lands on both sides
    assert (valid == patient_split(patients, labels, valid_frac=0.2, seed=4)).all()
    assert (valid != patient_split(patients, labels, valid_frac=0.2, seed=5)).any()


def test_split_of_a_single_patient_names_the_way_out():
    labels = np.eye(4, dtype=np.uint8)
    with pytest.raises(CxrltError) as info:
        patient_split(np.array(["P7"] * 4), labels)
    assert "all belong to one patient (P7)" in str(info.value)
    assert "split_by=image" in str(info.value)
