"""Submission writers: official headers, class reordering by name, every problem reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt.data.labels import CXR_LT_2026_CLASSES, CXR_LT_2026_TASK2_CLASSES
from cxrlt.errors import CxrltError
from cxrlt.outputs.submission import (
    build_submission,
    submission_for_dataset,
    validate_submission,
    write_dataset_submission,
    write_submission,
)
from cxrlt.registry import SubmissionFormat, registry


def declared_format(dataset: str, name: str) -> SubmissionFormat:
    """The submission format ``name`` that the data set's entry declares."""
    return {fmt.name: fmt for fmt in registry("datasets").get(dataset).submissions}[name]


FMT = declared_format("cxr-lt-2026", "cxr-lt-2026")
IDS = [f"{100 + i}_{i:04x}abcd.png" for i in range(8)]


def _probs(n_images: int, n_classes: int) -> np.ndarray:
    """Values with four decimals parse back to the very same float64 from the CSV."""
    return np.random.default_rng(0).integers(0, 10_001, (n_images, n_classes)) / 10_000


@pytest.fixture
def frame() -> pd.DataFrame:
    return build_submission(FMT, IDS, _probs(len(IDS), 30), CXR_LT_2026_CLASSES)


def _read(path: Path, id_column: str = "ImageID") -> pd.DataFrame:
    return pd.read_csv(path, dtype={id_column: str})


def test_valid_2026_submission_round_trips(tmp_path: Path, frame: pd.DataFrame) -> None:
    assert validate_submission(frame, FMT, IDS) == []
    path = write_submission(tmp_path / "sub" / "task1.csv", frame, FMT, IDS)
    back = _read(path)
    assert list(back.columns) == ["ImageID", *CXR_LT_2026_CLASSES]
    assert len(back.columns) == 31
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=True)
    assert [p.name for p in path.parent.iterdir()] == ["task1.csv"]  # no temporary file left


def test_unrounded_probabilities_keep_their_order(tmp_path: Path) -> None:
    probs = np.full((len(IDS), 30), 0.5)
    probs[:, 0] = 1 - np.logspace(-8, -6, len(IDS))  # near-saturated, all distinct
    frame = build_submission(FMT, IDS, probs, CXR_LT_2026_CLASSES)
    back = _read(write_submission(tmp_path / "s.csv", frame, FMT, IDS))
    np.testing.assert_allclose(back["Normal"], probs[:, 0], rtol=0, atol=1e-8)
    assert back["Normal"].is_unique


def test_classes_are_reordered_by_name() -> None:
    shuffled = list(reversed(CXR_LT_2026_CLASSES))
    probs = np.tile(np.arange(31) / 100, (len(IDS), 1))  # column j holds j / 100
    frame = build_submission(FMT, IDS, probs, [*shuffled, "extra finding"])  # extra is dropped
    assert list(frame.columns) == ["ImageID", *CXR_LT_2026_CLASSES]
    for name in CXR_LT_2026_CLASSES:
        assert (frame[name] == shuffled.index(name) / 100).all()
    assert frame["ImageID"].tolist() == IDS


def test_class_the_model_lacks_is_named() -> None:
    classes = [c if c != "Nodule" else "nodule" for c in CXR_LT_2026_CLASSES[:-1]]
    with pytest.raises(CxrltError) as error:
        build_submission(FMT, IDS, _probs(len(IDS), 29), classes)
    message = str(error.value)
    assert "2 class(es)" in message
    assert "'calcified densities'" in message
    assert "'Nodule' (the model has 'nodule')" in message


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(CxrltError, match="shape"):
        build_submission(FMT, IDS, _probs(len(IDS) - 1, 30), CXR_LT_2026_CLASSES)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.iloc[1:], "1 of 8 expected ImageID(s) missing"),
        (lambda f: pd.concat([f, f.iloc[[2]]]), "1 duplicated ImageID(s)"),
        (lambda f: pd.concat([f, f.iloc[[0]].assign(ImageID="999_x.png")]), "1 unexpected ImageID"),
        (lambda f: f.assign(Mass=np.nan), "8 NaN value(s)"),
        (lambda f: f.assign(Mass=1.5), "8 outside [0, 1] value(s)"),
        (lambda f: f.assign(Mass=-0.1), "8 outside [0, 1] value(s)"),
        (lambda f: f.assign(Mass=np.inf), "8 infinite value(s)"),
        (lambda f: f.assign(Mass="high"), "8 non-numeric value(s)"),
        (lambda f: f.drop(columns="sternotomy"), "1 missing column(s): 'sternotomy'"),
        (lambda f: f.assign(extra=0.5), "1 unexpected column(s): 'extra'"),
        (lambda f: f[["ImageID", *reversed(CXR_LT_2026_CLASSES)]], "out of order"),
    ],
)
def test_each_problem_is_reported(frame: pd.DataFrame, change, expected: str) -> None:
    problems = validate_submission(change(frame), FMT, IDS)
    assert len(problems) == 1
    assert expected in problems[0]


def test_problem_messages_show_examples(frame: pd.DataFrame) -> None:
    bad = frame.copy()
    bad.loc[3, "Mass"] = 1.5
    (problem,) = validate_submission(bad, FMT, IDS)
    assert f"{IDS[3]}/'Mass'=1.5" in problem
    (problem,) = validate_submission(frame.iloc[:2], FMT, IDS)
    assert "6 of 8" in problem and repr(IDS[2]) in problem and "and 3 more." in problem


def test_every_problem_is_listed_and_nothing_is_written(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    bad = pd.concat([frame.iloc[1:], frame.iloc[[2]]], ignore_index=True)
    bad.loc[0, "Mass"] = np.nan
    bad.loc[1, "Hernia"] = 1.5
    bad.loc[2, "fracture"] = -0.1
    bad = bad.drop(columns="sternotomy")
    path = tmp_path / "task1.csv"
    path.write_text("previous submission\n")
    with pytest.raises(CxrltError) as error:
        write_submission(path, bad, FMT, [*IDS, "extra_expected.png"])
    message = str(error.value)
    for part in (
        "missing column(s): 'sternotomy'",
        "duplicated ImageID",
        "2 of 9 expected ImageID(s) missing",
        "1 NaN value(s)",
        "2 outside [0, 1] value(s)",
        "5 problem(s)",
    ):
        assert part in message
    assert path.read_text() == "previous submission\n"
    assert [p.name for p in tmp_path.iterdir()] == ["task1.csv"]


def test_failed_write_creates_no_file(tmp_path: Path, frame: pd.DataFrame) -> None:
    with pytest.raises(CxrltError):
        write_submission(tmp_path / "task1.csv", frame.assign(Mass=2.0), FMT, IDS)
    assert list(tmp_path.iterdir()) == []


def test_task2_format() -> None:
    fmt = declared_format("cxr-lt-2026", "cxr-lt-2026-task2")
    assert fmt.columns == ("ImageID", "Scoliosis", "Osteopenia", "Bulla", "Infarction",
                           "Adenopathy", "goiter")  # fmt: skip
    frame = build_submission(fmt, IDS, _probs(len(IDS), 6), CXR_LT_2026_TASK2_CLASSES)
    assert validate_submission(frame, fmt, IDS) == []


@pytest.mark.parametrize(
    ("dataset", "name", "n_columns"),
    [
        ("cxr-lt-2024", "cxr-lt-2024", 41),
        ("cxr-lt-2024", "cxr-lt-2024-gold", 27),
        ("cxr-lt-2023", "cxr-lt-2023", 27),
    ],
)
def test_mimic_formats(tmp_path: Path, dataset: str, name: str, n_columns: int) -> None:
    fmt = declared_format(dataset, name)
    assert len(fmt.columns) == n_columns
    assert fmt.id_column == "dicom_id"
    ids = ["02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "174413ec-4ec4c1f7-34ea26b7-c5f994f8"]
    model = [*reversed(fmt.classes), "Other"]
    frame = build_submission(fmt, ids, _probs(2, len(model)), model)
    back = _read(write_submission(tmp_path / "s.csv", frame, fmt, ids), "dicom_id")
    assert list(back.columns) == list(fmt.columns)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_gold_format_uses_normal_not_no_finding() -> None:
    gold = declared_format("cxr-lt-2024", "cxr-lt-2024-gold").classes
    assert "Normal" in gold and "No Finding" not in gold
    assert "No Finding" in declared_format("cxr-lt-2023", "cxr-lt-2023").classes


def test_the_format_is_the_declared_one_with_the_models_classes() -> None:
    gold = declared_format("cxr-lt-2024", "cxr-lt-2024-gold")
    assert submission_for_dataset("cxr-lt-2024", list(reversed(gold.classes))) is gold
    full = declared_format("cxr-lt-2024", "cxr-lt-2024")
    assert submission_for_dataset("cxr-lt-2024", full.classes) is full
    # the embedded set and an alias of the 2026 set are written like CXR-LT 2026
    assert submission_for_dataset("synthetic", CXR_LT_2026_CLASSES).name == "cxr-lt-2026"
    assert submission_for_dataset("cxrlt26", CXR_LT_2026_TASK2_CLASSES).name == (
        "cxr-lt-2026-task2"
    )


def test_no_declared_format_with_the_models_classes_names_the_declared_ones() -> None:
    with pytest.raises(CxrltError, match=r"cxr-lt-2026 \(30 classes\), cxr-lt-2026-task2 \(6"):
        submission_for_dataset("cxr-lt-2026", CXR_LT_2026_CLASSES[:29])
    with pytest.raises(CxrltError, match="'csv' has the model's 2 classes .*none declared"):
        submission_for_dataset("csv", ["a", "b"])


PLUGIN_DATASET = """
from cxrlt.hookspecs import hookimpl
from cxrlt.registry import SubmissionFormat

@hookimpl
def register_datasets(register):
    register(
        "ward-films",
        "cxrlt.data.embedded:synthetic_dataset",
        submissions=[
            SubmissionFormat("ward-films-2027", "film_id", ("Mass", "Hernia"), "Both findings."),
            SubmissionFormat("ward-films-lazy", "film_id", "fake_ward:LAZY_CLASSES"),
        ],
    )

LAZY_CLASSES = ("Kyphosis",)
"""


def test_a_plugin_data_set_writes_a_validated_submission(cxrlt_fake_plugin, tmp_path: Path):
    cxrlt_fake_plugin("ward", PLUGIN_DATASET)
    model = ["Hernia", "Mass"]  # in another order: columns are picked by name
    probs = _probs(3, 2)
    path, fmt = write_dataset_submission(tmp_path / "s.csv", "ward-films", IDS[:3], probs, model)
    assert fmt.name == "ward-films-2027"
    back = _read(path, "film_id")
    assert list(back.columns) == ["film_id", "Mass", "Hernia"]
    assert back["film_id"].tolist() == IDS[:3]
    np.testing.assert_array_equal(back[["Mass", "Hernia"]].to_numpy(), probs[:, [1, 0]])
    lazy = declared_format("ward-films", "ward-films-lazy")
    assert submission_for_dataset("ward-films", ["Kyphosis"]) is lazy
    assert lazy.columns == ("film_id", "Kyphosis")
    with pytest.raises(CxrltError, match=r"(?s)ward-films-2027 submission .*2 outside \[0, 1\]"):
        write_dataset_submission(tmp_path / "t.csv", "ward-films", IDS[:1], probs[:1] + 5, model)
    assert not (tmp_path / "t.csv").exists()
