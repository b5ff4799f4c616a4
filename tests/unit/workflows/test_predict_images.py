"""New images, from Python and the CLI: a folder or files predicted as training decoded them,
checked against the run's own submission; bad images stop or are skipped and listed."""

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
from cxrlt.data.embedded import synthetic_folder
from cxrlt.data.images import read_image
from cxrlt.errors import CxrltError
from cxrlt.prediction import (
    IMAGE_COLUMN,
    PROBLEM_COLUMN,
    find_images,
    load_run,
    prediction_columns,
)
from tests.unit.data.test_images import smooth, write_dicom

N_TEST = 8
DATA = f"synthetic:n_images=160,size=32,n_test={N_TEST}"
# The challenge file keeps 8 significant digits, and float32 convolutions of a batch of another
# size may take other kernels (oneDNN picks by shape): the same image's probabilities then
# agree to about 1e-6, not to the last digit.
SUBMISSION_PRECISION = 1e-5


def invoke(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def flat(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A calibrated run with a threshold per class, and a submission for its test images."""
    out = tmp_path_factory.mktemp("predict") / "run"
    result = invoke(
        "run", "--dataset", DATA, "--size", 32, "--epochs", 1, "--bs", 32,
        "--post", "temp-scale,f1-per-class", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def submission(run) -> pd.DataFrame:
    """The run's own probabilities for its test images, by file name: what training wrote."""
    return pd.read_csv(run / "submission.csv", dtype={"ImageID": str}).set_index("ImageID")


def synthetic_test_images() -> list[Path]:
    folder = synthetic_folder(160, 32, 100.0, 0, N_TEST)
    ids = pd.read_csv(folder / "test_task1.csv", dtype=str)["ImageID"]
    return [folder / "images" / image for image in ids]


def saved_thresholds(run: Path) -> np.ndarray:
    state = json.loads((run / "calibration.json").read_text())["thresholds"]["state"]
    return np.asarray(state["thresholds"])


@pytest.mark.slow
def test_a_folder_is_predicted_as_the_run_predicted_its_test_images(run, submission, tmp_path):
    folder = tmp_path / "new"
    (folder / "ward").mkdir(parents=True)
    # 16-bit PNGs, one level down: a folder is searched recursively
    for path in synthetic_test_images():
        shutil.copy(path, folder / "ward" / path.name)
    trained = load_run(run)
    frame = trained.predict(folder)

    assert frame.index.name == IMAGE_COLUMN
    assert list(frame.columns) == prediction_columns(trained.classes)
    assert sorted(frame.index) == sorted(f"ward/{name}" for name in submission.index)
    probs = frame[[f"prob:{c}" for c in trained.classes]]
    expected = submission.loc[[name.split("/")[1] for name in frame.index]].to_numpy()
    np.testing.assert_allclose(probs.to_numpy(), expected, rtol=SUBMISSION_PRECISION, atol=1e-12)
    predicted = frame[[f"predicted:{c}" for c in trained.classes]].to_numpy(int)
    thresholds = saved_thresholds(run)
    assert len(set(thresholds.round(6))) > 1  # a threshold per class, not one for all
    np.testing.assert_array_equal(predicted, (probs.to_numpy() >= thresholds).astype(int))
    assert frame[PROBLEM_COLUMN].isna().all()


@pytest.mark.slow
def test_png_jpeg_and_dicom_decode_at_the_runs_size(run, submission, tmp_path):
    """An 8-bit PNG of the pixels training saw predicts as the submission did; a JPEG and a
    DICOM as the run's model does on the pixels the decoder gives for them."""
    trained = load_run(run)
    source = synthetic_test_images()[0]
    seen = read_image(source, trained.size)
    Image.fromarray(seen).save(tmp_path / "eight-bit.png")
    Image.fromarray(smooth(90, 70, 256).astype(np.uint8)).save(tmp_path / "photo.jpg")
    write_dicom(tmp_path / "film.dcm", smooth(80, 64, 4096).astype(np.uint16))
    files = [tmp_path / "eight-bit.png", tmp_path / "photo.jpg", tmp_path / "film.dcm"]
    frame = trained.predict(files)

    assert list(frame.index) == [str(path) for path in files]  # files are named as given
    probs = frame[[f"prob:{c}" for c in trained.classes]].to_numpy()
    np.testing.assert_allclose(
        probs[0], submission.loc[source.name].to_numpy(), rtol=SUBMISSION_PRECISION, atol=1e-12
    )
    pixels = np.stack([read_image(path, trained.size) for path in files[1:]])
    np.testing.assert_allclose(probs[1:], trained.probabilities(trained.logits(pixels)))


@pytest.mark.slow
def test_an_ensemble_predicts_its_members_merged(run, tmp_path):
    ensemble = tmp_path / "ensemble"
    result = invoke("ensemble", run, run, "--out", ensemble, "--merge", "prob")
    assert result.exit_code == 0, result.output
    files = synthetic_test_images()[:3]
    alone, merged = load_run(run).predict(files), load_run(ensemble).predict(files)
    probs = [f"prob:{c}" for c in load_run(run).classes]
    np.testing.assert_allclose(merged[probs], alone[probs], rtol=1e-12)
    assert (merged[[c.replace("prob", "predicted") for c in probs]] ==
            (alone[probs] >= 0.5).astype(int).to_numpy()).all().all()  # fmt: skip


@pytest.mark.slow
def test_the_cli_writes_one_row_per_image(run, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    for path in synthetic_test_images()[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_text("not an image either, and hidden")
    out = tmp_path / "preds.csv"
    result = invoke("predict", run, "--images", folder, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "Predictions for 3 images written" in flat(result)
    assert "1 other files in the folders were left out" in flat(result)
    written = pd.read_csv(out, dtype={IMAGE_COLUMN: str}).set_index(IMAGE_COLUMN)
    expected = load_run(run).predict(folder)
    assert list(written.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(written.iloc[:, :-1], expected.iloc[:, :-1], check_dtype=False)


@pytest.mark.slow
def test_a_bad_image_stops_before_anything_is_written_unless_skipped(run, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    good = synthetic_test_images()[:2]
    for path in good:
        shutil.copy(path, folder / path.name)
    png = good[0].read_bytes()
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    out = tmp_path / "preds.csv"

    result = invoke("predict", run, "--images", folder, "--out", out)
    assert result.exit_code == 2
    assert "1 of 3 images cannot be read: cut.png (" in flat(result)
    assert "--skip-bad" in flat(result) and not out.exists()

    result = invoke("predict", run, "--images", folder, "--out", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "Skipped 1 of 3 images that cannot be decoded" in flat(result)
    written = pd.read_csv(out).set_index(IMAGE_COLUMN)
    assert "corrupt or truncated" in written.loc["cut.png", PROBLEM_COLUMN]
    assert written.loc["cut.png"].drop(PROBLEM_COLUMN).isna().all()
    assert written.drop(index="cut.png").notna().drop(columns=PROBLEM_COLUMN).all().all()

    with pytest.raises(CxrltError, match="skip_bad=True"):
        load_run(run).predict(folder)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "synthetic"], "give one or the other"),
        (["--data", "somewhere"], "give one or the other"),
        (["--bs", "0"], "--bs must be at least 1"),
    ],
)
def test_images_refuse_options_of_the_submission(run, tmp_path, extra, message):
    result = invoke("predict", run, "--images", tmp_path, *extra)
    assert result.exit_code == 2 and message in flat(result)


@pytest.mark.slow
def test_skip_bad_is_for_new_images_only_and_out_is_checked_first(run, tmp_path):
    result = invoke("predict", run, "--skip-bad")
    assert result.exit_code == 2 and "--skip-bad applies to --images only" in flat(result)
    (tmp_path / "cut.png").write_bytes(b"\x89PNG")  # would stop decoding: --out stops first
    result = invoke("predict", run, "--images", tmp_path, "--out", tmp_path)
    assert result.exit_code == 2 and f"--out {tmp_path} is a folder" in flat(result)


def test_find_images_names_what_it_cannot_use(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(CxrltError, match="holds no images"):
        find_images(empty)
    with pytest.raises(CxrltError, match="does not exist"):
        find_images(tmp_path / "missing")
    with pytest.raises(CxrltError, match="No images given"):
        find_images([])
    nested = tmp_path / "nested"
    (nested / "a").mkdir(parents=True)
    write_dicom(nested / "a" / "IM0001", smooth(16, 16, 4096).astype(np.uint16))  # no suffix
    Image.fromarray(smooth(16, 16, 256).astype(np.uint8)).save(nested / "a" / "B.PNG")
    found = find_images(nested)
    assert found.table["ImageID"].tolist() == ["a/B.PNG", "a/IM0001"] and found.ignored == 0
    with pytest.raises(CxrltError, match="Two images are named 'a/B.PNG'"):
        find_images([nested, nested])
