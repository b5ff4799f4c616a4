"""CXR-LT 2026 files under their shipped names, and the test images kept out of training."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.challenges import CXR_LT_2026_FILES, PADCHEST_LABELS, PADCHEST_VIEWS
from cxrlt.data.labels import (
    CXR_LT_2023_CLASSES,
    CXR_LT_2024_CLASSES,
    CXR_LT_2024_GOLD_CLASSES,
    CXR_LT_2026_CLASSES,
    CXR_LT_2026_META_COLUMNS,
    CXR_LT_2026_TASK2_CLASSES,
    MIMIC_META_COLUMNS,
)
from cxrlt.data.table import read_patient_file
from cxrlt.errors import CxrltError
from tests.unit.data.test_datasets import build, cxrlt26, synthetic_source  # noqa: F401 (fixtures)
from tests.unit.outputs.test_submission import declared_format

REAL_DATA_GUIDE = Path(__file__).parents[3] / "docs" / "guides" / "real-data.md"
TEST_IDS = slice(50, 60)  # the fixture's test images


@pytest.fixture
def shipped(cxrlt26, synthetic_source) -> Path:  # noqa: F811
    """The 2026 folder as the organisers ship it: long names, the test images inside the
    training CSV and on the removal list, a test CSV whose last 30 column names are empty."""
    full = pd.read_csv(synthetic_source / "train.csv", dtype=str)
    full.to_csv(cxrlt26 / "CXRLT_2026_training.csv", index=False)
    meta = full[list(CXR_LT_2026_META_COLUMNS)]
    pd.concat([meta.iloc[:5], meta.iloc[TEST_IDS]]).to_csv(cxrlt26 / "Removal.csv", index=False)
    lines = [",".join(CXR_LT_2026_META_COLUMNS) + "," * 30]
    lines += [",".join(row) + "," * 30 for row in meta.iloc[TEST_IDS].itertuples(index=False)]
    (cxrlt26 / "CXRLT_2026_TEST_ALL_TASK1.csv").write_text("\n".join(lines) + "\n")
    for short in ("train.csv", "removal.csv", "test_task1.csv"):
        (cxrlt26 / short).unlink()
    return cxrlt26


def test_the_shipped_names_are_found_and_the_lists_applied(shipped):
    data = build("cxr-lt-2026", path=str(shipped))
    notes = " ".join(data.notes)
    assert len(data) == 45 and not data.warnings
    assert "Removed 15 images listed in Removal.csv" in notes
    assert "None of the 10 images on the test list CXRLT_2026_TEST_ALL_TASK1.csv" in notes
    test_ids = pd.read_csv(shipped / "Removal.csv", dtype=str)["ImageID"].iloc[5:]
    assert data.test["ImageID"].tolist() == test_ids.tolist()
    assert not set(test_ids) & set(data.image_ids)
    assert data.provenance == {
        "train": str(shipped / "CXRLT_2026_training.csv"),
        "removal": str(shipped / "Removal.csv"),
        "test": str(shipped / "CXRLT_2026_TEST_ALL_TASK1.csv"),
        "removed_by_removal_list": 15,
        "removed_by_test_list": 0,
        "leak_check": "removal and test lists applied",
        "split_by": "patient",
    }


@pytest.mark.parametrize(
    "shipped_name, short_name, parameter",
    [
        ("CXRLT_2026_training.csv", "train.csv", "train_csv"),
        ("CXRLT_2026_TEST_ALL_TASK1.csv", "test_task1.csv", "test_csv"),
    ],
)
def test_two_candidates_for_one_file_is_an_error_naming_both(
    shipped, shipped_name, short_name, parameter
):
    (shipped / short_name).write_bytes((shipped / shipped_name).read_bytes())
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(shipped))
    assert f"{shipped_name} and {short_name}" in str(info.value)
    assert f"cxr-lt-2026:{parameter}=NAME" in str(info.value)
    assert len(build("cxr-lt-2026", path=str(shipped), **{parameter: short_name})) == 45


def test_the_same_file_under_both_names_is_one_candidate(shipped):
    (shipped / "train.csv").symlink_to(shipped / "CXRLT_2026_training.csv")
    assert len(build("cxr-lt-2026", path=str(shipped))) == 45


@pytest.mark.parametrize("parameter", ["train_csv", "removal_csv", "test_csv", "patients_csv"])
def test_a_named_file_that_is_missing_is_an_error(shipped, parameter):
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(shipped), **{parameter: "mylist.csv"})
    assert f"{parameter}=mylist.csv: {shipped / 'mylist.csv'} does not exist" in str(info.value)


def test_test_images_are_not_trained_on_without_a_removal_list(shipped):
    (shipped / "Removal.csv").unlink()
    data = build("cxr-lt-2026", path=str(shipped))
    assert len(data) == 50 and not data.warnings
    assert (
        "Removed 10 training images that are on the test list CXRLT_2026_TEST_ALL_TASK1.csv."
        in data.notes
    )
    assert not set(data.test["ImageID"]) & set(data.image_ids)
    assert data.provenance["removed_by_test_list"] == 10
    assert data.provenance["leak_check"] == "test list applied; no removal list found"


def test_prepare_warns_when_no_list_keeps_the_test_images_out(shipped):
    for name in ("Removal.csv", "CXRLT_2026_TEST_ALL_TASK1.csv"):
        (shipped / name).unlink()
    args = ["prepare", "--dataset", "cxr-lt-2026", "--data", str(shipped), "--size", "32"]
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Warning: No removal list and no test list found (looked for Removal.csv" in output
    assert "Note: Removed" not in output


@pytest.mark.slow
def test_the_run_records_what_kept_the_test_images_out(shipped, tmp_path):
    (shipped / "Removal.csv").unlink()
    out = tmp_path / "run"
    args = ["run", "--dataset", "cxr-lt-2026", "--data", str(shipped), "--out", str(out)]
    args += ["--size", "32", "--epochs", "1", "--bs", "16", "--no-pretrained"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Note: Removed 10 training images that are on the test list" in result.output
    provenance = json.loads((out / "config.json").read_text())["data"]["provenance"]
    assert provenance["removed_by_test_list"] == 10 and provenance["removal"] is None
    assert provenance["leak_check"] == "test list applied; no removal list found"


def _mangle_patients(folder: Path, mangled: tuple[str, ...] = ("1.90E+38",)) -> pd.DataFrame:
    """Spreadsheet-style PatientIDs in train.csv (the ``mangled`` values in turn); returns the
    true ones (IDs as text)."""
    train = pd.read_csv(folder / "train.csv", dtype=str)
    truth = pd.DataFrame(
        {
            "ImageID": train["ImageID"],
            "PatientID": [f"00{i // 2}" for i in range(len(train))],
            "Projection": "PA",
        }
    )
    train["PatientID"] = [mangled[i % len(mangled)] for i in range(len(train))]
    train.to_csv(folder / "train.csv", index=False)
    return truth


def test_patients_csv_restores_the_patient_groups(cxrlt26, tmp_path):  # noqa: F811
    truth = _mangle_patients(cxrlt26)
    labels = tmp_path / f"{PADCHEST_LABELS}.gz"  # outside --data, named by its absolute path
    truth.iloc[:45].to_csv(labels, index=False)
    data = build("cxr-lt-2026", path=str(cxrlt26), patients_csv=str(labels))
    assert data.patients.tolist() == truth["PatientID"][5:45].tolist() + ["1.90E+38"] * 5
    notes = " ".join(data.notes)
    assert f"PatientIDs of 45 images taken from {labels.name}" in notes
    assert "5 images are not in it" in notes and "patients_csv=" not in notes
    assert data.provenance["patients"] == str(labels)
    assert data.provenance["patients_not_found"] == 5


def test_the_spreadsheet_warning_names_patients_csv(cxrlt26):  # noqa: F811
    _mangle_patients(cxrlt26, ("1.90E+38", "2.10E+38"))
    data = build("cxr-lt-2026", path=str(cxrlt26))
    [note] = [n for n in data.notes if "spreadsheet" in n]
    assert "cxr-lt-2026:patients_csv=PATH" in note and PADCHEST_LABELS in note


def test_one_spreadsheet_patient_for_all_stops_and_names_both_ways_out(cxrlt26):  # noqa: F811
    _mangle_patients(cxrlt26)
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(cxrlt26))
    message = str(info.value)
    assert "every row has the PatientID '1.90E+38'" in message
    assert "cxr-lt-2026:patients_csv=PATH" in message
    assert "--dataset cxr-lt-2026:split_by=image" in message


def test_a_patients_csv_without_the_id_columns_is_an_error(cxrlt26):  # noqa: F811
    pd.DataFrame({"ImageID": ["a.png"], "Patient": ["1"]}).to_csv(cxrlt26 / "p.csv", index=False)
    with pytest.raises(CxrltError) as info:
        build("cxr-lt-2026", path=str(cxrlt26), patients_csv="p.csv")
    message = str(info.value)
    assert "p.csv has no 'PatientID' column (rename 'Patient' to 'PatientID'?)" in message
    assert "It needs the columns 'ImageID', 'PatientID'" in message


def test_the_real_padchest_label_file_gives_every_image_its_patient():
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or spec.origin is None:
        pytest.skip("torchxrayvision (which ships PadChest's label CSV) is not installed")
    labels = Path(spec.origin).parent / "data" / f"{PADCHEST_LABELS}.gz"
    known = read_patient_file(labels, PADCHEST_VIEWS.columns)
    assert len(known) == 160_861 and known.index.is_unique
    image = "20536686640136348236148679891455886468_k6ga29.png"
    assert known.loc[image, "PatientID"] == "839860488694292331637988235681460987"  # as text
    assert set(PADCHEST_VIEWS.columns) <= set(known.columns)  # its studies and projections


def test_the_real_data_guide_lists_the_names_of_every_2026_file():
    lines = REAL_DATA_GUIDE.read_text().splitlines()
    rows = {p: [line for line in lines if f"| `{p}` |" in line] for p in CXR_LT_2026_FILES}
    for parameter, file in CXR_LT_2026_FILES.items():
        [row] = rows[parameter]
        assert all(f"`{name}`" in row for name in file.names), row
    assert PADCHEST_LABELS in rows["patients_csv"][0]


def test_a_patients_csv_of_another_data_set_is_an_error(cxrlt26):  # noqa: F811
    pd.DataFrame({"ImageID": ["a.png"], "PatientID": ["1"]}).to_csv(cxrlt26 / "p.csv", index=False)
    with pytest.raises(CxrltError, match="holds none of the 50 training images' ImageIDs"):
        build("cxr-lt-2026", path=str(cxrlt26), patients_csv="p.csv")


# ---- the organisers' headers, written out here by hand (shared/domain.md, section 1) -----------
# Copied literally, not imported, so that a change to cxrlt/data/labels.py cannot change what
# these tests expect.
OFFICIAL_2026_TRAIN_HEADER = (
    "ImageID,StudyDate_DICOM,PatientID,Normal,aortic elongation,cardiomegaly,pleural effusion,"
    "Nodule,atelectasis,pleural thickening,aortic atheromatosis,Support Devices,alveolar pattern,"
    "fracture,Hernia,Emphysema,azygos lobe,Hydropneumothorax,Kyphosis,Mass,Pneumothorax,"
    "Subcutaneous Emphysema,pneumoperitoneo,vascular hilar enlargement,"
    "vertebral degenerative changes,hyperinflated lung,interstitial pattern,"
    "central venous catheter,hypoexpansion,bronchiectasis,hemidiaphragm elevation,sternotomy,"
    "calcified densities"
)
OFFICIAL_2026_TEST_HEADER = (
    "ImageID,StudyDate_DICOM,PatientID,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,"  # 30 empty names
)
OFFICIAL_2026_SUBMISSION_HEADER = "ImageID," + OFFICIAL_2026_TRAIN_HEADER.split(",", 3)[3]
OFFICIAL_2026_TASK2_HEADER = "ImageID,Scoliosis,Osteopenia,Bulla,Infarction,Adenopathy,goiter"
OFFICIAL_2024_CLASSES = (
    "Adenopathy,Atelectasis,Azygos Lobe,Calcification of the Aorta,Cardiomegaly,"
    "Clavicle Fracture,Consolidation,Edema,Emphysema,Enlarged Cardiomediastinum,Fibrosis,"
    "Fissure,Fracture,Granuloma,Hernia,Hydropneumothorax,Infarction,Infiltration,Kyphosis,"
    "Lobar Atelectasis,Lung Lesion,Lung Opacity,Mass,Nodule,Normal,Pleural Effusion,"
    "Pleural Other,Pleural Thickening,Pneumomediastinum,Pneumonia,Pneumoperitoneum,"
    "Pneumothorax,Pulmonary Embolism,Pulmonary Hypertension,Rib Fracture,"
    "Round(ed) Atelectasis,Subcutaneous Emphysema,Support Devices,Tortuous Aorta,Tuberculosis"
)
OFFICIAL_2023_CLASSES = (
    "Atelectasis,Calcification of the Aorta,Cardiomegaly,Consolidation,Edema,Emphysema,"
    "Enlarged Cardiomediastinum,Fibrosis,Fracture,Hernia,Infiltration,Lung Lesion,Lung Opacity,"
    "Mass,No Finding,Nodule,Pleural Effusion,Pleural Other,Pleural Thickening,"
    "Pneumomediastinum,Pneumonia,Pneumoperitoneum,Pneumothorax,Subcutaneous Emphysema,"
    "Support Devices,Tortuous Aorta"
)
OFFICIAL_MIMIC_ID_COLUMNS = "fpath,subject_id,study_id,dicom_id"


def test_the_2026_headers_match_the_organisers():
    assert len(OFFICIAL_2026_TRAIN_HEADER.split(",")) == 33
    assert ",".join((*CXR_LT_2026_META_COLUMNS, *CXR_LT_2026_CLASSES)) == OFFICIAL_2026_TRAIN_HEADER
    assert (
        ",".join(declared_format("cxr-lt-2026", "cxr-lt-2026").columns)
        == OFFICIAL_2026_SUBMISSION_HEADER
    )
    assert (
        ",".join(declared_format("cxr-lt-2026", "cxr-lt-2026-task2").columns)
        == OFFICIAL_2026_TASK2_HEADER
    )
    assert ",".join(CXR_LT_2026_TASK2_CLASSES) == OFFICIAL_2026_TASK2_HEADER.split(",", 1)[1]


def test_the_mimic_label_lists_match_the_organisers():
    assert ",".join(CXR_LT_2024_CLASSES) == OFFICIAL_2024_CLASSES
    assert ",".join(CXR_LT_2023_CLASSES) == OFFICIAL_2023_CLASSES
    gold = OFFICIAL_2023_CLASSES.replace("No Finding", "Normal")
    assert ",".join(CXR_LT_2024_GOLD_CLASSES) == gold
    assert ",".join(declared_format("cxr-lt-2024", "cxr-lt-2024").classes) == OFFICIAL_2024_CLASSES
    assert ",".join(declared_format("cxr-lt-2023", "cxr-lt-2023").classes) == OFFICIAL_2023_CLASSES
    assert ",".join(MIMIC_META_COLUMNS) == OFFICIAL_MIMIC_ID_COLUMNS


def test_files_with_the_organisers_headers_are_read(shipped):
    """The training and test CSVs rewritten under the literal headers: read as shipped."""
    for name, header in (
        ("CXRLT_2026_training.csv", OFFICIAL_2026_TRAIN_HEADER),
        ("CXRLT_2026_TEST_ALL_TASK1.csv", OFFICIAL_2026_TEST_HEADER),
    ):
        lines = (shipped / name).read_text().splitlines()
        assert len(lines[0].split(",")) == len(header.split(","))
        (shipped / name).write_text("\n".join([header, *lines[1:]]) + "\n")
    data = build("cxr-lt-2026", path=str(shipped))
    assert len(data) == 45 and len(data.test) == 10 and not data.problems
