"""Decoding: deep images keep their contrast, DICOM comes out bone-bright, bad files fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxrlt.data.images import (
    conversion_notes,
    decode_image,
    read_image,
    read_images,
    window_to_uint8,
)
from cxrlt.errors import CxrltError

DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def smooth(height: int, width: int, levels: int, seed: int = 0) -> np.ndarray:
    """A smooth ramp plus noise spanning 0..levels-1, like an exposure with anatomy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (xx / width + yy / height) / 2 * (levels - 1)
    return np.clip(base + rng.normal(0, levels / 50, base.shape), 0, levels - 1)


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", **extra) -> Path:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = DX_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    for name, value in extra.items():
        setattr(ds, name, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_12_bit_values_in_a_16_bit_png_use_the_whole_grey_range(tmp_path: Path) -> None:
    pixels = smooth(300, 240, 4096).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = read_image(tmp_path / "deep.png", 128)
    naive = np.unique((pixels / 65535 * 255).round())
    assert out.shape == (128, 128) and out.dtype == np.uint8
    assert len(np.unique(out)) >= 200 and int(out.max()) - int(out.min()) >= 250
    assert len(naive) < 20


def test_window_estimates_percentiles_on_a_subsample_of_big_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pixels = np.add.outer(np.arange(3000), np.arange(3000)).astype(np.uint16)  # 0..5998
    sampled, percentile = [], np.percentile
    monkeypatch.setattr(np, "percentile", lambda a, q: sampled.append(a.size) or percentile(a, q))
    out = window_to_uint8(pixels)
    assert sampled and sampled[0] <= 300_000  # not the 9 million pixels
    assert out.shape == pixels.shape and out.dtype == np.uint8
    assert out[:20, :20].max() == 0 and out[-20:, -20:].min() == 255
    assert abs(int(out[1500, 1500]) - 128) <= 2  # the window matches the full-image one


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_8_bit_images_read_back_close_to_the_original(tmp_path: Path, suffix: str) -> None:
    pixels = smooth(256, 256, 256).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"grey{suffix}")
    out = read_image(tmp_path / f"grey{suffix}", 128)
    expected = pixels.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    assert np.abs(out - expected).mean() < 3  # not windowed: values keep their meaning


def test_colour_images_become_grey(tmp_path: Path) -> None:
    grey = smooth(64, 64, 256).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], -1)).save(tmp_path / "a.png")
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    for name in ("rgb.png", "a.png", "la.png", "p.png"):
        out = read_image(tmp_path / name, 64)
        assert out.shape == (64, 64) and np.abs(out.astype(int) - grey).max() <= 1
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "rgb.jpg", 64).astype(int) - grey).mean() < 3


def test_a_conversion_to_grey_names_the_source_mode(tmp_path: Path) -> None:
    grey = smooth(64, 64, 256).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.jpg")  # drafted as L
    Image.fromarray(np.stack([grey] * 3 + [grey], -1)).save(tmp_path / "rgba.png")
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey).save(tmp_path / "grey.jpg")
    Image.fromarray(smooth(64, 64, 4096).astype(np.uint16)).save(tmp_path / "deep.png")
    write_dicom(tmp_path / "x.dcm", smooth(64, 64, 4096))
    modes = {path.name: decode_image(path, 32).converted_from for path in tmp_path.iterdir()}
    assert modes == {
        "rgb.png": "RGB",
        "rgb.jpg": "RGB",
        "rgba.png": "RGBA",
        "la.png": "LA",
        "p.png": "P",
        "grey.png": None,
        "grey.jpg": None,
        "deep.png": None,
        "x.dcm": None,
    }


def test_conversion_notes_count_each_kind_and_name_examples() -> None:
    names = [f"img{i}.png" for i in range(10)]
    converted = {1: "RGB", 4: "RGB", 5: "P", 7: "RGB", 9: "RGB"}
    assert conversion_notes(converted, names) == [
        "4 images were RGB colour, converted to greyscale (e.g. img1.png, img4.png, img7.png, "
        "...).",
        "1 image was palette colour, converted to greyscale (e.g. img5.png).",
    ]
    assert conversion_notes({}, names) == []


def test_letterbox_keeps_the_aspect_ratio_on_black_bars(tmp_path: Path) -> None:
    tall = np.full((200, 100), 200, np.uint8)
    tall[100:] = 100  # two halves: the content is not blank, and its top stays on top
    Image.fromarray(tall).save(tmp_path / "tall.png")
    boxed = read_image(tmp_path / "tall.png", 64, letterbox=True)
    content_columns = np.flatnonzero(boxed.max(axis=0))
    assert (boxed[:, :16] == 0).all() and (boxed[:, 48:] == 0).all()
    assert (content_columns[0], content_columns[-1]) == (16, 47)
    # 64 x 32: the 2:1 aspect ratio is kept
    assert (boxed[:30, 16:48] == 200).all() and (boxed[34:, 16:48] == 100).all()
    plain = read_image(tmp_path / "tall.png", 64)  # a plain resize fills the frame
    assert (plain[:30] == 200).all() and (plain[34:] == 100).all()


def test_letterbox_windows_deep_images_without_the_bars(tmp_path: Path) -> None:
    Image.fromarray(smooth(100, 200, 4096).astype(np.uint16)).save(tmp_path / "wide.png")
    images = read_images([tmp_path / "wide.png"] * 2, 64, workers=2, letterbox=True)
    assert images.shape == (2, 64, 64) and (images[:, :16] == 0).all()
    assert (images[:, 48:] == 0).all() and images[:, 16:48].max() == 255


def test_dicom_monochrome1_comes_back_inverted(tmp_path: Path) -> None:
    pixels = smooth(64, 80, 4096)
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", pixels), 32)
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1"), 32)
    assert m2.std() > 50
    assert np.corrcoef(m1.ravel(), m2.ravel())[0, 1] < -0.99


def test_dicom_square_is_bright_and_slope_is_applied(tmp_path: Path) -> None:
    pixels = np.full((64, 64), 1000)
    pixels[16:48, 16:48] = 3000
    out = read_image(write_dicom(tmp_path / "square.dcm", pixels), 32)
    assert (out[10:22, 10:22] == 255).all() and (out[:4] == 0).all()
    flipped = read_image(write_dicom(tmp_path / "flip.dcm", pixels, RescaleSlope=-1), 32)
    assert (flipped[10:22, 10:22] == 0).all() and (flipped[:4] == 255).all()


def test_dicom_is_recognised_by_its_preamble_without_the_suffix(tmp_path: Path) -> None:
    pixels = smooth(40, 40, 4096)
    dicom = write_dicom(tmp_path / "image.dcm", pixels)
    renamed = dicom.rename(tmp_path / "image_without_suffix")
    assert read_image(renamed, 32).max() == 255


def corrupt(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    if name == "truncated.png":
        Image.fromarray(smooth(256, 256, 65536).astype(np.uint16)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif name == "random.png":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif name == "bilevel.png":
        Image.fromarray(smooth(32, 32, 2) > 0.5).save(path)
    elif name == "float.tif":
        Image.fromarray(smooth(32, 32, 2).astype(np.float32)).save(path)
    elif name == "random.dcm":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif name == "multiframe.dcm":
        write_dicom(path, np.zeros((2, 16, 16)), NumberOfFrames=2)
    elif name == "colour.dcm":
        write_dicom(path, np.zeros((16, 16, 3)), "RGB", SamplesPerPixel=3, PlanarConfiguration=0)
    elif name == "truncated.dcm":
        write_dicom(path, smooth(64, 64, 4096))
        path.write_bytes(path.read_bytes()[:-100])
    elif name == "blank.png":
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    elif name == "blank-rgb.png":
        Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(path)
    elif name == "blank-16-bit.png":
        Image.fromarray(np.full((40, 40), 3000, np.uint16)).save(path)
    elif name == "blank.dcm":
        write_dicom(path, np.full((40, 40), 700))
    return path


@pytest.mark.parametrize(
    "name",
    [
        "missing.png",
        "truncated.png",
        "random.png",
        "bilevel.png",
        "float.tif",
        "random.dcm",
        "multiframe.dcm",
        "colour.dcm",
        "truncated.dcm",
    ],
)
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path: Path, name: str) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(CxrltError, match=name):
        read_image(corrupt(tmp_path, name), 32)


@pytest.mark.parametrize("name", ["blank.png", "blank-rgb.png", "blank-16-bit.png", "blank.dcm"])
def test_an_image_with_a_single_value_is_refused_with_the_reason(tmp_path: Path, name: str):
    with pytest.raises(CxrltError) as info:
        read_image(corrupt(tmp_path, name), 32)
    message = str(info.value)
    assert name in message and "a single value" in message and "(a blank export?)" in message
    assert "export it again or remove its row" in message


def test_an_almost_blank_image_is_not_refused(tmp_path: Path) -> None:
    pixels = np.zeros((40, 40), np.uint8)
    pixels[20, 20] = 1
    Image.fromarray(pixels).save(tmp_path / "dark.png")
    assert read_image(tmp_path / "dark.png", 32).shape == (32, 32)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_names_the_permission_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    Image.fromarray(smooth(40, 40, 256).astype(np.uint8)).save(path)
    path.chmod(0)
    with pytest.raises(CxrltError) as info:
        read_image(path, 32)
    assert "locked.png: cannot read the file (Permission denied)" in str(info.value)
    assert "chmod a+r" in str(info.value)


def test_pydicom_is_imported_only_for_dicom() -> None:
    code = "import sys, cxrlt.data.images; print('pydicom' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
