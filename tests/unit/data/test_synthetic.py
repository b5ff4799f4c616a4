"""The synthetic data set: label statistics, co-occurrence, drawing, determinism and writing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlt.data import synthetic
from cxrlt.data.labels import (
    CXR_LT_2026_CLASSES,
    CXR_LT_2026_META_COLUMNS,
    CXR_LT_2026_TRAIN_COUNTS,
    imbalance_ratio,
)
from cxrlt.data.synthetic import (
    draw_chest,
    finding_prevalences,
    sample_labels,
    write_synthetic_cxr,
)

FINDINGS = CXR_LT_2026_CLASSES[1:]
N_ROWS = 20_000


def label_row(*names: str) -> np.ndarray:
    row = np.zeros(len(CXR_LT_2026_CLASSES), np.uint8)
    row[[CXR_LT_2026_CLASSES.index(name) for name in names]] = 1
    row[0] = not row[1:].any()
    return row


def draw(size: int, seed: int, *names: str) -> np.ndarray:
    return draw_chest(label_row(*names), size, np.random.default_rng(seed)).astype(float)


def region(image: np.ndarray, x: tuple[float, float], y: tuple[float, float]) -> np.ndarray:
    """Pixels whose centres lie in [x0, x1) x [y0, y1) of the normalised [-1, 1] frame."""
    centres = (np.arange(image.shape[0]) + 0.5) / image.shape[0] * 2 - 1
    rows = (centres >= y[0]) & (centres < y[1])
    cols = (centres >= x[0]) & (centres < x[1])
    return image[np.ix_(rows, cols)]


def lift(labels: np.ndarray, a: str, b: str) -> float:
    """P(a and b) / (P(a) P(b)): 1 when independent."""
    i, j = CXR_LT_2026_CLASSES.index(a), CXR_LT_2026_CLASSES.index(b)
    both = (labels[:, i] & labels[:, j]).mean()
    return float(both / (labels[:, i].mean() * labels[:, j].mean()))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return sample_labels(N_ROWS, imbalance=100.0, seed=7)


# ---------------------------------------------------------------------------------- labels


def test_normal_is_positive_exactly_when_no_finding_is(labels):
    assert labels.shape == (N_ROWS, 30) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[:, 0] == 1, labels[:, 1:].sum(axis=1) == 0)


@pytest.mark.parametrize("imbalance", [1.0, 10.0, 100.0, 1000.0])
def test_finding_prevalences_keep_the_real_order_and_hit_the_requested_ratio(imbalance):
    findings = finding_prevalences(imbalance)[1:]
    counts = np.array(CXR_LT_2026_TRAIN_COUNTS[1:])
    assert findings.max() / findings.min() == pytest.approx(imbalance, rel=1e-9)
    if imbalance > 1:
        np.testing.assert_array_equal(np.argsort(findings), np.argsort(counts))
    assert findings.sum() == pytest.approx(synthetic._FINDINGS_PER_IMAGE)


def test_label_frequencies_follow_the_target_marginals(labels):
    target = finding_prevalences(100.0)
    seen = labels.mean(axis=0)
    standard_error = np.sqrt(target * (1 - target) / N_ROWS)
    assert np.all(np.abs(seen - target) < 5 * standard_error), (seen - target) / standard_error
    ranks = pd.DataFrame({"seen": seen[1:], "real": CXR_LT_2026_TRAIN_COUNTS[1:]}).rank()
    assert np.corrcoef(ranks["seen"], ranks["real"])[0, 1] > 0.95


def test_normal_share_and_labels_per_image_look_like_the_real_data(labels):
    assert 0.30 < labels[:, 0].mean() < 0.40  # real: 0.34
    assert 1.2 < labels.sum(axis=1).mean() < 1.55  # real: 1.27


def test_imbalance_ratio_of_the_findings_is_near_the_requested_one():
    sampled = sample_labels(N_ROWS, imbalance=30.0, seed=3)
    assert imbalance_ratio(sampled[:, 1:]) == pytest.approx(30.0, rel=0.3)
    # Counting Normal, the most frequent class, the ratio is several times larger.
    assert imbalance_ratio(sampled) > 2 * imbalance_ratio(sampled[:, 1:])


def test_imbalance_ratio_ignores_classes_without_positives():
    labels = np.array([[1, 0, 1, 1]] * 2 + [[1, 0, 0, 1]] * 8, np.uint8)
    assert imbalance_ratio(labels) == 5.0  # 10 / 2; the empty class is left out
    assert np.isnan(imbalance_ratio(np.zeros((3, 4), np.uint8)))


def test_related_findings_co_occur_more_than_independence_predicts(labels):
    assert lift(labels, "cardiomegaly", "pleural effusion") > 1.5
    assert lift(labels, "Support Devices", "central venous catheter") > 2.5
    assert lift(labels, "Pneumothorax", "Subcutaneous Emphysema") > 3
    assert lift(labels, "Nodule", "Kyphosis") < 1.45  # unrelated: only the illness factor


def test_every_finding_has_a_few_positives_even_in_a_tiny_skewed_set():
    tiny = sample_labels(300, imbalance=1000.0, seed=0)
    assert tiny[:, 1:].sum(axis=0).min() >= 3


def test_labels_are_deterministic_for_a_seed():
    np.testing.assert_array_equal(sample_labels(500, seed=1), sample_labels(500, seed=1))
    assert not np.array_equal(sample_labels(500, seed=1), sample_labels(500, seed=2))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="imbalance"):
        sample_labels(10, imbalance=0.5)
    with pytest.raises(ValueError, match="n_images"):
        sample_labels(0)


# --------------------------------------------------------------------------------- drawing


@pytest.mark.parametrize("size", [32, 160])
def test_draw_chest_gives_12_bit_greyscale_with_an_offset(size):
    image = draw_chest(label_row(), size, np.random.default_rng(0))
    assert image.shape == (size, size) and image.dtype == np.uint16
    assert 100 < image.min() and image.max() <= 4095  # a naive / 65535 looks nearly black
    assert len(np.unique(image)) > 200  # many grey levels, not a cartoon


def test_the_anatomy_is_where_a_chest_film_has_it():
    image = draw(128, 5)
    right_lung = region(image, (-0.6, -0.3), (-0.4, 0.0))  # the patient's right: image left
    left_lung = region(image, (0.35, 0.6), (-0.4, 0.0))
    lungs = np.concatenate([right_lung.ravel(), left_lung.ravel()])
    heart = region(image, (-0.05, 0.25), (0.0, 0.2))
    abdomen = region(image, (-0.6, 0.6), (0.6, 0.9))
    corner = region(image, (-1.0, -0.9), (-1.0, -0.9))
    assert lungs.mean() < heart.mean() - 500 and lungs.mean() < abdomen.mean() - 500
    assert corner.mean() < lungs.mean()  # air outside the body is darkest


def test_drawing_is_deterministic_and_seed_dependent():
    np.testing.assert_array_equal(draw(64, 11, "Mass"), draw(64, 11, "Mass"))
    assert not np.array_equal(draw(64, 11), draw(64, 12))


def test_drawing_is_resolution_independent():
    small, large = draw(32, 4, "cardiomegaly"), draw(256, 4, "cardiomegaly")
    pooled = large.reshape(32, 8, 32, 8).mean(axis=(1, 3))
    assert np.corrcoef(small.ravel(), pooled.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("finding", FINDINGS)
def test_every_finding_changes_the_image(finding):
    with_it, without = draw(64, 2, finding), draw(64, 2)
    assert np.abs(with_it - without).mean() > 0.1


@pytest.mark.parametrize(
    ("finding", "inside", "outside"),
    [  # normalised (x range, y range); the image's right is the patient's left
        ("cardiomegaly", ((-0.4, 0.8), (-0.1, 0.5)), ((-1, 1), (-1, -0.5))),
        ("pleural effusion", ((-0.8, 0.8), (-0.05, 0.6)), ((-1, 1), (-1, -0.4))),
        ("pneumoperitoneo", ((-0.9, 0.9), (0.15, 0.55)), ((-1, 1), (-1, 0.0))),
        ("hyperinflated lung", ((-0.8, 0.8), (0.1, 0.7)), ((-1, 1), (-1, -0.4))),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_findings_show_in_their_expected_region(finding, inside, outside, seed):
    diff = np.abs(draw(96, seed, finding) - draw(96, seed))
    assert region(diff, *inside).mean() > 4 * max(region(diff, *outside).mean(), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_support_devices_add_bright_metal(seed):
    diff = draw(96, seed, "Support Devices") - draw(96, seed)
    assert diff.max() > 300 and diff.min() > -50  # devices only brighten


# --------------------------------------------------------------------------------- writing


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("synthetic") / "set"
    assert write_synthetic_cxr(folder, n_images=40, size=48, seed=5) == folder
    return folder, pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)


def test_written_csv_has_the_real_columns_and_labels(written):
    folder, table = written
    assert list(table.columns) == [*CXR_LT_2026_META_COLUMNS, *CXR_LT_2026_CLASSES]
    assert len(table) == 40 and table["ImageID"].is_unique
    assert all(re.fullmatch(r"\d{38}_[0-9a-z]{6}\.png", name) for name in table["ImageID"])
    dates = pd.to_datetime(table["StudyDate_DICOM"], format="%Y%m%d")
    assert dates.min().year >= 2009 and dates.max().year <= 2019
    labels = table[list(CXR_LT_2026_CLASSES)].astype(int).to_numpy()
    np.testing.assert_array_equal(labels, sample_labels(40, seed=5))


def test_some_patients_have_two_or_three_images(written):
    _, table = written
    per_patient = table["PatientID"].value_counts()
    assert per_patient.max() in (2, 3) and (per_patient == 1).any()
    assert all(re.fullmatch(r"\d+", patient) for patient in per_patient.index)


def test_written_images_are_16_bit_pngs_using_12_bits(written):
    folder, table = written
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(table["ImageID"])
    for name in table["ImageID"][:10]:
        with Image.open(folder / "images" / name) as image:
            assert image.format == "PNG" and image.mode.startswith("I;16")
            assert image.size == (48, 48)
            pixels = np.asarray(image)
        assert 255 < pixels.max() <= 4095


def test_a_second_call_returns_the_folder_untouched(written):
    folder, _ = written
    files = sorted(folder.rglob("*"))
    stamps = [f.stat().st_mtime_ns for f in files]
    assert write_synthetic_cxr(folder, n_images=40, size=48, seed=5) == folder
    assert sorted(folder.rglob("*")) == files and [f.stat().st_mtime_ns for f in files] == stamps
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary left


def test_the_same_seed_writes_identical_bytes(tmp_path):
    def contents(seed: int, name: str) -> dict[str, bytes]:
        folder = write_synthetic_cxr(tmp_path / name, n_images=6, size=32, seed=seed)
        return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    first, again, other = contents(0, "a"), contents(0, "b"), contents(1, "c")
    assert first == again
    assert first["train.csv"] != other["train.csv"]
    assert not set(first.values()) & set(other.values())  # every image differs too


def test_an_interrupted_run_leaves_no_data_set_behind(tmp_path, monkeypatch):
    calls = []

    def failing(labels, size, rng):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return np.zeros((size, size), np.uint16)

    monkeypatch.setattr(synthetic, "draw_chest", failing)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_cxr(tmp_path / "set", n_images=5, size=16)
    assert list(tmp_path.iterdir()) == []
