"""The decoded-image cache: content, reuse, resume after Ctrl-C, staleness, failures, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data import cache
from cxrlt.data.cache import CACHE_VERSION, cache_folder, prepare_images
from cxrlt.data.images import read_image

SIZE = 24


def write_png(path: Path, seed: int, shape: tuple[int, int] = (40, 56)) -> Path:
    """A 16-bit greyscale PNG using 12 bits, like the real data."""
    pixels = np.random.default_rng(seed).integers(0, 4096, shape, dtype=np.uint16)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def pngs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    return [write_png(folder / f"{i:03d}.png", i) for i in range(12)]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the cache decodes (in this process: tests use workers=1)."""
    calls: list[str] = []

    def counting(path, size, *, letterbox=False):
        calls.append(str(path))
        return read_image(path, size, letterbox=letterbox)

    monkeypatch.setattr(cache, "read_image", counting)
    return calls


def expected(paths: list[Path], size: int = SIZE) -> np.ndarray:
    return np.stack([read_image(p, size) for p in paths])


def prepare(paths, **kwargs) -> cache.CachedImages:
    kwargs = {"workers": 1, "progress": False, **kwargs}
    return prepare_images(paths, kwargs.pop("size", SIZE), **kwargs)


def test_content_matches_read_image_and_second_call_decodes_nothing(pngs, decodes):
    first = prepare(pngs)
    assert isinstance(first.images, np.memmap) and not first.images.flags.writeable
    assert first.images.shape == (12, SIZE, SIZE) and first.images.dtype == np.uint8
    np.testing.assert_array_equal(first.images, expected(pngs))
    assert first.failures == {} and first.decoded == 12 and len(decodes) == 12
    assert first.folder == cache_folder(pngs, SIZE)
    manifest = json.loads((first.folder / "manifest.json").read_text())
    assert manifest == {"cache_version": CACHE_VERSION, "size": SIZE, "letterbox": False, "n": 12}

    decodes.clear()
    second = prepare([str(p) for p in pngs])  # str or Path, same cache
    assert decodes == [] and second.decoded == 0 and second.folder == first.folder
    np.testing.assert_array_equal(second.images, expected(pngs))


def test_interrupted_build_resumes_with_the_remaining_rows(pngs, decodes, monkeypatch):
    real_chunk = cache._decode_chunk
    chunks = []

    def interrupted(*args):
        if chunks:
            raise KeyboardInterrupt
        chunks.append(args)
        return real_chunk(*args)

    monkeypatch.setattr(cache, "_decode_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(pngs)
    folder = cache_folder(pngs, SIZE)
    done = np.load(folder / "done.npy")
    first_rows = len(chunks[0][-1])
    assert 0 < done.sum() == first_rows < len(pngs)
    assert done[:first_rows].all()  # the rows of the finished chunk, and only those

    monkeypatch.setattr(cache, "_decode_chunk", real_chunk)
    write_png(pngs[-1], seed=77)  # changed while waiting: decoded in its new version, once
    os.utime(pngs[-1], ns=(0, 10**18))
    decodes.clear()
    resumed = prepare(pngs)
    assert sorted(decodes) == sorted(str(p) for p in pngs[first_rows:])
    assert resumed.decoded == len(pngs) - first_rows
    np.testing.assert_array_equal(resumed.images, expected(pngs))
    decodes.clear()
    assert prepare(pngs).decoded == 0 and decodes == []


def test_a_changed_source_image_is_decoded_again(pngs, decodes):
    old = prepare(pngs)
    before = np.array(old.images)
    del old
    write_png(pngs[5], seed=99)  # same shape, new content
    stat = pngs[5].stat()
    os.utime(pngs[5], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    decodes.clear()

    new = prepare(pngs)
    assert decodes == [str(pngs[5].absolute())] and new.decoded == 1
    np.testing.assert_array_equal(new.images[5], read_image(pngs[5], SIZE))
    assert not np.array_equal(new.images[5], before[5])
    np.testing.assert_array_equal(np.delete(new.images, 5, 0), np.delete(before, 5, 0))


def test_a_changed_list_reuses_the_unchanged_rows(pngs, decodes):
    prepare(pngs[:8])
    decodes.clear()
    changed = pngs[10:] + pngs[2:6]  # two new images, four known ones in another order
    again = prepare(changed)
    assert sorted(decodes) == sorted(str(p) for p in pngs[10:])
    assert again.folder == cache_folder(pngs[:8], SIZE)  # one cache per image folder
    np.testing.assert_array_equal(again.images, expected(changed))


def test_size_and_letterbox_give_other_folders(pngs):
    folders = {
        cache_folder(pngs, 24),
        cache_folder(pngs, 32),
        cache_folder(pngs, 24, letterbox=True),
    }
    assert len(folders) == 3
    small, large = prepare(pngs, size=24), prepare(pngs, size=32)
    assert small.folder != large.folder and large.images.shape == (12, 32, 32)
    np.testing.assert_array_equal(large.images, expected(pngs, 32))
    boxed = prepare(pngs, letterbox=True)
    assert "letterbox" in boxed.folder.name
    np.testing.assert_array_equal(boxed.images[3], read_image(pngs[3], SIZE, letterbox=True))


def test_undecodable_images_are_listed_and_the_rest_cached(pngs):
    pngs[4].write_bytes(b"not a png at all")
    pngs[9].unlink()
    cached = prepare(pngs)
    assert sorted(cached.failures) == [4, 9]
    assert str(pngs[4].name) in cached.failures[4] and "decode" in cached.failures[4]
    assert not cached.images[4].any() and not cached.images[9].any()
    good = [k for k in range(12) if k not in (4, 9)]
    np.testing.assert_array_equal(cached.images[good], expected([pngs[k] for k in good]))
    # Known failures are remembered, not decoded again...
    assert prepare(pngs).failures == cached.failures
    # ...until the file is fixed.
    write_png(pngs[9], seed=9)
    fixed = prepare(pngs)
    assert sorted(fixed.failures) == [4]
    np.testing.assert_array_equal(fixed.images[9], read_image(pngs[9], SIZE))


def test_two_workers_write_the_same_bytes_as_one(pngs, tmp_path):
    one = prepare(pngs, folder=tmp_path / "one", workers=1)
    two = prepare(pngs, folder=tmp_path / "two", workers=2)
    assert (tmp_path / "one" / "images.u8").read_bytes() == (
        tmp_path / "two" / "images.u8"
    ).read_bytes()
    np.testing.assert_array_equal(one.images, two.images)


def test_empty_list(tmp_path):
    cached = prepare([], folder=tmp_path / "empty")
    assert cached.images.shape == (0, SIZE, SIZE) and cached.failures == {}


def test_progress_output_and_stale_note(pngs, capsys):
    from rich.console import Console

    console = Console(file=None, force_terminal=False, width=200)
    prepare(pngs, progress=True, console=console)
    os.utime(pngs[0], ns=(0, 10**18))
    prepare(pngs, progress=True, console=console)
    err = capsys.readouterr().out
    assert "decoded 12 images" in err
    assert "1 of 12 images changed" in err and "decoded 1 images" in err


def test_prepare_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(tmp_path / "cache"))
    args = ["prepare", "--dataset", "synthetic:n_images=40,size=32", "--size", "32"]
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    [folder] = (tmp_path / "cache" / "images").iterdir()
    assert f"Cache folder: {folder}" in result.output
    assert "Images:       40" in result.output
    assert np.load(folder / "done.npy").all()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "nothing, the cache was complete" in again.output
