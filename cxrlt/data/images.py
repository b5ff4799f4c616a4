"""Decoding chest X-rays into compact uint8 arrays at the training size.

16-bit PNGs usually use 12 to 16 bits: dividing by 65535 would crush them into a few grey
levels, so deeper images (and DICOM) are windowed by robust percentiles instead. Colour and
palette images are converted to grey and say so (a data summary counts them); an image with one
value in every pixel (a blank export) is refused like a corrupt one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrlt.errors import CxrltError

WINDOW_PERCENTILES = (0.5, 99.5)

# Percentiles of a quarter-million pixels are as robust as those of nine million, and far cheaper.
_WINDOW_SAMPLE = 1 << 18
# 8-bit modes that are not plain grey: converted to grey (never windowed) and counted, since a
# colour export among greyscale ones is worth a look. Values name them in the data summary.
CONVERTED_MODES = {
    "RGB": "RGB colour",
    "RGBA": "RGBA (colour with transparency)",
    "RGBX": "RGB colour",
    "CMYK": "CMYK colour",
    "YCbCr": "YCbCr colour",
    "P": "palette colour",
    "PA": "palette colour with transparency",
    "LA": "greyscale with transparency (LA)",
}
# Deeper integer modes (16-bit PNG and TIFF): resized in float, then windowed.
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# Big downscales first shrink by an integer box filter: as good as a full resample (Pillow's own
# advice) and 4x faster for 3000 px to 224 px.
_REDUCING_GAP = 2.0
_SAVE_HINT = "save it as 8- or 16-bit greyscale PNG, JPEG or DICOM"


def window_to_uint8(
    pixels: np.ndarray, percentiles: tuple[float, float] = WINDOW_PERCENTILES
) -> np.ndarray:
    """Map any grey range to 0..255 by clipping at percentiles estimated on a strided subsample."""
    step = max(1, math.ceil(math.sqrt(pixels.size / _WINDOW_SAMPLE)))
    sample = pixels[..., ::step, ::step] if pixels.ndim >= 2 else pixels.ravel()[:: step * step]
    low, high = np.percentile(sample, percentiles)
    if high <= low:
        return np.zeros(pixels.shape, np.uint8)
    scaled = (pixels.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


@dataclass(frozen=True)
class DecodedImage:
    """An image at the training size, and the mode it was converted from when it was not grey
    (a key of :data:`CONVERTED_MODES`), so that conversions can be counted, never silent."""

    pixels: np.ndarray
    converted_from: str | None = None


def read_image(path: Path | str, size: int, *, letterbox: bool = False) -> np.ndarray:
    """One image as (size, size) uint8 (see :func:`decode_image`)."""
    return decode_image(path, size, letterbox=letterbox).pixels


def decode_image(path: Path | str, size: int, *, letterbox: bool = False) -> DecodedImage:
    """One image as (size, size) uint8, resized with antialiasing before windowing.

    With ``letterbox`` the aspect ratio is kept: the long side fits ``size`` and the image is
    centred on black; otherwise it is stretched to fill the frame. Raises CxrltError for a file
    that cannot be read or decoded, or whose pixels all have one value.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            dicom = path.suffix.lower() == ".dcm" or file.read(132)[128:] == b"DICM"
    except OSError as error:
        raise CxrltError(
            f"{path}: cannot read the file ({error.strerror}); check that it exists and is "
            "readable (chmod a+r), or remove its row."
        ) from None
    if dicom:
        content, converted_from = _read_dicom(path, size, letterbox), None
    else:
        content, converted_from = _read_pil(path, size, letterbox)
    if letterbox:
        framed = np.zeros((size, size), np.uint8)
        top, left = (size - content.shape[0]) // 2, (size - content.shape[1]) // 2
        framed[top : top + content.shape[0], left : left + content.shape[1]] = content
        content = framed
    return DecodedImage(content, converted_from)


def conversion_notes(converted: Mapping[int, str], names: Sequence[str]) -> list[str]:
    """One line per source mode for the images converted to grey, with the first few names.

    ``converted`` maps a row to its source mode (as :class:`DecodedImage` gives it), ``names``
    names the rows (ImageIDs or paths).
    """
    by_mode: dict[str, list[int]] = {}
    for row in sorted(converted):
        by_mode.setdefault(CONVERTED_MODES.get(converted[row], converted[row]), []).append(row)
    lines = []
    for kind, rows in sorted(by_mode.items(), key=lambda item: -len(item[1])):
        count, example = len(rows), ", ".join(str(names[row]) for row in rows[:3])
        more = ", ..." if count > 3 else ""
        verb = "image was" if count == 1 else "images were"
        lines.append(f"{count} {verb} {kind}, converted to greyscale (e.g. {example}{more}).")
    return lines


def read_images(
    paths: Sequence[Path | str], size: int, workers: int | None = None, *, letterbox: bool = False
) -> np.ndarray:
    """All images as one (N, size, size) uint8 array, decoded in parallel threads."""
    out = np.empty((len(paths), size, size), np.uint8)
    workers = workers or min(8, os.cpu_count() or 1)

    def fill(i: int) -> None:
        out[i] = read_image(paths[i], size, letterbox=letterbox)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, range(len(paths))))
    return out


def _target(width: int, height: int, size: int, letterbox: bool) -> tuple[int, int]:
    """The (width, height) to resize to: the whole frame, or the long side fitted to it."""
    if not letterbox:
        return size, size
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    return image.resize(target, Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)


def _refuse_blank(path: Path, low: float, high: float) -> None:
    """A single value in every pixel is an export that went wrong, not an X-ray."""
    if low == high:
        raise CxrltError(
            f"{path}: the image has a single value ({low:g}) in every pixel (a blank export?); "
            "export it again or remove its row."
        )


def _read_pil(path: Path, size: int, letterbox: bool) -> tuple[np.ndarray, str | None]:
    """PNG, JPEG and the like, and the mode converted from; Pillow refuses truncated files as
    long as LOAD_TRUNCATED_IMAGES stays False, which is what keeps a half-written PNG from
    decoding as partly black."""
    try:
        with Image.open(path) as image:
            mode, target = image.mode, _target(*image.size, size, letterbox)
            if mode == "L" or mode in CONVERTED_MODES:
                image.draft("L", target)  # JPEG decodes at 1/2, 1/4 or 1/8 scale; others ignore it
                grey = image.convert("L")
                _refuse_blank(path, *grey.getextrema())
                return np.asarray(_resize(grey, target)), None if mode == "L" else mode
            if mode not in _DEEP_MODES:
                raise CxrltError(
                    f"{path}: unsupported image mode {mode!r} (bilevel, float or other "
                    f"bit depth); {_SAVE_HINT}."
                )
            deep = image.convert("F")
            _refuse_blank(path, *deep.getextrema())
            deep = _resize(deep, target)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CxrltError(
            f"{path}: cannot decode the image ({error}); the file is corrupt or truncated. "
            "Replace it or remove its row."
        ) from None
    return window_to_uint8(np.asarray(deep)), None


def _read_dicom(path: Path, size: int, letterbox: bool) -> np.ndarray:
    """DICOM in modality units (slope and intercept applied), bone bright, then windowed."""
    try:
        import pydicom  # lazily: importing pydicom costs more than the rest of this module
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise CxrltError(f"{path}: reading DICOM needs pydicom: pip install pydicom.") from None
    try:
        dataset = pydicom.dcmread(path)
        if "PixelData" not in dataset:
            raise CxrltError(
                f"{path}: no integer pixel data (truncated, or not an image); replace it or "
                "remove its row."
            )
        frames = int(dataset.get("NumberOfFrames") or 1)
        photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
        samples = dataset.get("SamplesPerPixel", 1)
        if frames != 1 or samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise CxrltError(
                f"{path}: {frames} frame(s) of {samples}-sample {photometric}: only single-frame "
                "greyscale DICOM is supported; export the one frontal image as greyscale."
            )
        if dataset.get("BitsAllocated", 16) not in (8, 16, 32):
            raise CxrltError(
                f"{path}: unexpected bit depth ({dataset.BitsAllocated} bits allocated); "
                f"{_SAVE_HINT}."
            )
        values = dataset.pixel_array.astype(np.float32)
        values *= float(dataset.get("RescaleSlope") or 1)
        values += float(dataset.get("RescaleIntercept") or 0)
    except CxrltError:
        raise
    except InvalidDicomError:
        raise CxrltError(
            f"{path}: not a DICOM file (no DICM header); replace it or remove its row."
        ) from None
    except Exception as error:  # pydicom has no common base for corrupt or undecodable data
        raise CxrltError(
            f"{path}: cannot decode the DICOM file ({error}); replace it, decompress it, or "
            "install a decoder for its transfer syntax (pylibjpeg)."
        ) from None
    _refuse_blank(path, float(values.min()), float(values.max()))
    if photometric == "MONOCHROME1":
        np.negative(values, out=values)  # low values are white: negate so bone comes out bright
    image = Image.fromarray(values)
    deep = _resize(image, _target(*image.size, size, letterbox))
    return window_to_uint8(np.asarray(deep))
