"""Decoding chest X-rays into compact uint8 arrays at the training size.

16-bit PNGs usually use 12 to 16 bits: dividing by 65535 would crush them into a few grey
levels, so deeper images are windowed by robust percentiles instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrlt.errors import CxrltError

WINDOW_PERCENTILES = (0.5, 99.5)


def window_to_uint8(
    pixels: np.ndarray, percentiles: tuple[float, float] = WINDOW_PERCENTILES
) -> np.ndarray:
    """Map any grey range to 0..255 by clipping at the given percentiles."""
    low, high = np.percentile(pixels, percentiles)
    if high <= low:
        return np.zeros(pixels.shape, np.uint8)
    scaled = (pixels.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def read_image(path: Path | str, size: int) -> np.ndarray:
    """One image as (size, size) uint8, resized with antialiasing before windowing."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                grey = image.convert("L")
                return np.asarray(grey.resize((size, size), Image.Resampling.BILINEAR))
            if image.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise CxrltError(
                    f"{path}: unsupported image mode {image.mode!r}: save it as "
                    "8- or 16-bit greyscale PNG, JPEG or DICOM."
                )
            deep = image.convert("F").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise CxrltError(
            f"{path}: cannot decode the image ({error}); the file is corrupt or "
            "truncated. Replace it or remove its row."
        ) from None
    return window_to_uint8(np.asarray(deep))


def read_images(paths: Sequence[Path | str], size: int, workers: int | None = None) -> np.ndarray:
    """All images as one (N, size, size) uint8 array, decoded in parallel threads."""
    out = np.empty((len(paths), size, size), np.uint8)
    workers = workers or min(8, os.cpu_count() or 1)

    def fill(i: int) -> None:
        out[i] = read_image(paths[i], size)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, range(len(paths))))
    return out
