"""The decoded-image cache: content, reuse, resume after Ctrl-C, staleness, failures, disk
space, conversions, CLI."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data import cache
from cxrlt.data.cache import (
    CACHE_VERSION,
    cache_folder,
    check_cache_space,
    check_cache_writable,
    prepare_images,
)
from cxrlt.data.images import decode_image, read_image
from cxrlt.errors import CxrltError

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
        return decode_image(path, size, letterbox=letterbox)

    monkeypatch.setattr(cache, "decode_image", counting)
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


def test_conversions_to_grey_are_recorded_and_kept_by_the_cache(pngs, decodes):
    grey = np.asarray(Image.open(pngs[2]).convert("L"))
    Image.fromarray(np.stack([grey] * 3, -1)).save(pngs[2])
    Image.fromarray(grey).convert("P").save(pngs[7])
    first = prepare(pngs)
    assert first.converted == {2: "RGB", 7: "P"} and first.failures == {}
    decodes.clear()
    again = prepare(pngs)  # from the cache: nothing decoded, the conversions still known
    assert decodes == [] and again.converted == {2: "RGB", 7: "P"}
    write_png(pngs[2], seed=2)  # greyscale again
    assert prepare(pngs).converted == {7: "P"}
    # A changed list keeps the conversions of the rows it copies.
    assert prepare(pngs[5:]).converted == {2: "P"}


def test_a_blank_image_is_a_failure_with_its_reason(pngs):
    Image.fromarray(np.zeros((40, 56), np.uint8)).save(pngs[3])
    cached = prepare(pngs)
    assert list(cached.failures) == [3]
    assert "a single value (0) in every pixel (a blank export?)" in cached.failures[3]


def change_ctime(path: Path) -> None:
    """Change only the file's ctime (what ``chmod`` does), waiting out a coarse clock tick."""
    before = path.stat().st_ctime_ns
    for _ in range(100):
        os.chmod(path, path.stat().st_mode)
        if path.stat().st_ctime_ns != before:
            return
        time.sleep(0.01)
    raise AssertionError(f"the ctime of {path} does not change")


def test_a_failed_image_replaced_keeping_size_and_mtime_is_decoded_again(pngs, decodes):
    good = pngs[4].read_bytes()
    stat = pngs[4].stat()
    pngs[4].write_bytes(b"\0" * len(good))  # corrupt, of the same size
    os.utime(pngs[4], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert list(prepare(pngs).failures) == [4]
    pngs[4].write_bytes(good)  # the fix: same size, and the old mtime put back
    os.utime(pngs[4], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    change_ctime(pngs[4])
    decodes.clear()
    fixed = prepare(pngs)
    assert decodes == [str(pngs[4])] and fixed.failures == {}
    np.testing.assert_array_equal(fixed.images[4], read_image(pngs[4], SIZE))


def test_a_failed_image_is_tried_again_once_its_permissions_change(pngs, decodes, monkeypatch):
    """Simulated unreadability (root reads anything): a metadata-only change (chmod) retries a
    failed row, and leaves decoded rows alone."""

    def unreadable(path, size, *, letterbox=False):
        decodes.append(str(path))
        if path == str(pngs[6]):
            raise CxrltError(f"{path}: cannot read the file (Permission denied)")
        return decode_image(path, size, letterbox=letterbox)

    monkeypatch.setattr(cache, "decode_image", unreadable)
    assert list(prepare(pngs).failures) == [6]
    decodes.clear()
    assert list(prepare(pngs).failures) == [6] and decodes == []  # remembered while unchanged
    monkeypatch.setattr(cache, "decode_image", decode_image)
    change_ctime(pngs[6])
    change_ctime(pngs[1])  # a decoded row: its pixels stay valid
    fixed = prepare(pngs)
    assert fixed.failures == {} and fixed.decoded == 1
    np.testing.assert_array_equal(fixed.images, expected(pngs))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_image_is_decoded_once_it_is_readable_again(pngs):
    pngs[6].chmod(0)
    assert "Permission denied" in prepare(pngs).failures[6]
    pngs[6].chmod(0o644)
    fixed = prepare(pngs)
    assert fixed.failures == {}
    np.testing.assert_array_equal(fixed.images[6], read_image(pngs[6], SIZE))


@pytest.mark.parametrize("size", [0, 7, 4097, 100_000])
def test_a_size_out_of_range_is_refused(pngs, tmp_path, size):
    with pytest.raises(CxrltError, match=rf"--size {size} is out of range.*between 8 and 4096"):
        prepare(pngs, size=size, folder=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def small_disk(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=free))


def test_a_cache_larger_than_the_free_space_is_refused_before_it_is_created(
    pngs, tmp_path, monkeypatch
):
    small_disk(monkeypatch, 10 << 20)
    folder = tmp_path / "cache" / "images"
    with pytest.raises(CxrltError) as info:
        prepare(pngs, folder=folder)
    message = str(info.value)
    assert f"12 images at {SIZE}x{SIZE} px need 64.0 MiB in {folder}" in message
    assert "only 10.0 MiB are free there" in message
    assert "smaller --size" in message and "CXRLT_CACHE_DIR" in message
    assert not (tmp_path / "cache").exists()


def test_check_cache_space_counts_a_cache_that_is_already_there(pngs, tmp_path, monkeypatch):
    folder = prepare(pngs, folder=tmp_path / "cache").folder
    small_disk(monkeypatch, 0)
    check_cache_space(12, SIZE, folder)  # complete: nothing more to write
    with pytest.raises(CxrltError, match="Not enough disk space"):
        check_cache_space(13, SIZE, folder)
    with pytest.raises(CxrltError, match="Not enough disk space"):
        check_cache_space(12, SIZE, tmp_path / "elsewhere")


def test_a_huge_size_would_need_more_than_any_disk(tmp_path):
    with pytest.raises(CxrltError, match=r"need 1\.5 TiB in"):
        check_cache_space(100_000, 4096, tmp_path)


def test_a_file_where_the_cache_folder_should_be_is_refused(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("CXRLT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(CxrltError) as info:
        check_cache_writable(tmp_path / "cache" / "images" / "x")
    message = str(info.value)
    assert f"{tmp_path / 'cache'} is a file, not a folder" in message
    assert f"CXRLT_CACHE_DIR is set to {tmp_path / 'cache'}" in message
    assert "Set CXRLT_CACHE_DIR to a folder you can write" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_cache_folder_is_refused_before_anything_is_written(pngs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(CxrltError, match="is not writable .*Set CXRLT_CACHE_DIR"):
        prepare(pngs, folder=locked / "images")
    assert list(locked.iterdir()) == []


def cache_files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


WHOLE = {"images.u8", "index.csv", "manifest.json", "done.npy", "failures.json", "converted.json"}


def test_a_disk_that_fills_up_while_decoding_stops_clearly_and_the_rerun_continues(
    pngs, decodes, tmp_path, monkeypatch
):
    monkeypatch.setattr(cache, "_CHUNK", 3)
    monkeypatch.setattr(cache, "_SAVE_EVERY", 0.0)  # save the done mask after every chunk
    real_save, saves = np.save, []

    def filling_up(file, array, **kwargs):
        saves.append(1)
        if len(saves) > 3:  # the mask of the create and of two chunks are saved
            file.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", filling_up)
    folder = tmp_path / "cache"
    with pytest.raises(CxrltError) as info:
        prepare(pngs, folder=folder)
    message = str(info.value)
    assert f"The disk filled up while writing the image cache in {folder}" in message
    assert "need 64.0 MiB (" in message and "CXRLT_CACHE_DIR" in message
    assert "run the same command again to continue" in message
    assert cache_files(folder) == WHOLE | {".lock"}  # no temporary file left
    assert np.load(folder / "done.npy").sum() == 6

    monkeypatch.setattr(np, "save", real_save)
    decodes.clear()
    resumed = prepare(pngs, folder=folder)
    assert sorted(decodes) == sorted(str(p) for p in pngs[6:])
    np.testing.assert_array_equal(resumed.images, expected(pngs))


def test_no_room_for_the_pixel_file_leaves_no_partial_file(pngs, tmp_path, monkeypatch):
    def no_room(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    folder = tmp_path / "cache"
    with pytest.raises(CxrltError, match="The disk filled up while writing the image cache"):
        prepare(pngs, folder=folder)
    assert cache_files(folder) == {".lock"}
    monkeypatch.undo()
    np.testing.assert_array_equal(prepare(pngs, folder=folder).images, expected(pngs))


def test_a_cache_on_a_file_system_without_flock_names_the_way_out(tmp_path, monkeypatch):
    fcntl = pytest.importorskip("fcntl")

    def no_flock(file, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(CxrltError) as info, cache._locked(tmp_path):
        pass
    assert str(tmp_path) in str(info.value) and "CXRLT_CACHE_DIR" in str(info.value)
    assert "No locks available" in str(info.value)
