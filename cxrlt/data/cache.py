"""Decode every image once into a compact uint8 cache that training memory-maps.

Decoding a large 16-bit PNG costs tens of milliseconds, so a data set is decoded once, resized
to the training size, and stored as one raw ``(N, size, size)`` uint8 file. The build uses
every core, shows progress, survives Ctrl-C (a rerun continues where it stopped) and notices
when source images changed.

A cache folder holds:

- ``images.u8``: the pixels, ``N * size * size`` bytes, row ``i`` for ``paths[i]``;
- ``index.csv``: row, absolute path, and the file's ``st_size``, ``st_mtime_ns`` and
  ``st_ctime_ns`` when it was decoded (its fingerprint);
- ``manifest.json``: cache version, size, letterbox and N;
- ``done.npy``: one bool per row, set only once the row's pixels are flushed: the resume point;
- ``failures.json``: row -> message for images that could not be decoded (their slot is zeros);
- ``converted.json``: row -> source mode for images converted to grey (RGB, palette, ...).

A decoded image is decoded again when its size or mtime changes; a failed one also when its
ctime does (a ``chmod a+r`` makes a file readable without touching the other two).

Small files are written atomically, so an interruption leaves the old version or the new one.
The pixel file's space is reserved when it is created: a cache that cannot fit stops there with
a clear error, and a disk that fills up anyway stops with one too, leaving a cache that a rerun
continues.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt.data.images import decode_image
from cxrlt.errors import CxrltError
from cxrlt.io import atomic_path, cache_dir, write_json, write_with

CACHE_VERSION = 2  # bump when decoding changes: old caches are then left alone, not reused

IMAGES, INDEX, MANIFEST, DONE, FAILURES, CONVERTED = (
    "images.u8",
    "index.csv",
    "manifest.json",
    "done.npy",
    "failures.json",
    "converted.json",
)
# Image sizes in pixels that make sense: below 8 a backbone has nothing left to pool, above
# 4096 one image takes 16 MiB and is larger than the X-rays it comes from.
SIZE_RANGE = (8, 4096)
_PARTIAL = "images.u8.partial"  # a new images file while rows are copied into it
_LOCK = ".lock"
_CHUNK = 32  # most rows per task: the work lost to a hard kill, and Ctrl-C's wait
_SAVE_EVERY = 1.0  # seconds between saves of the done mask while decoding
_STAT_THREADS = 16  # stat() in parallel: it waits on the file system (slow on network drives)
_COPY_ROWS = 256  # rows copied at a time from an old cache
_INDEX_ROW_BYTES = 256  # room per row for the index and the other small files
_SPACE_MARGIN = 64 << 20  # left free beyond the cache: the run directory and logs need some
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_MOVE_CACHE = (
    "free some space, or set CXRLT_CACHE_DIR to a folder on a larger disk "
    "(export CXRLT_CACHE_DIR=/path/with/space)"
)


@dataclass(frozen=True)
class CachedImages:
    """Decoded images of a list of paths, in that order.

    ``images`` is a read-only ``(N, size, size)`` uint8 memory map; ``failures`` maps the row of
    each image that could not be decoded to the reason (its slot is zeros); ``converted`` maps
    the row of each image converted to grey to its source mode (see
    :func:`cxrlt.data.images.conversion_notes`); ``decoded`` counts the images this call decoded
    (0 when the cache was already complete).
    """

    images: np.ndarray
    failures: dict[int, str]
    folder: Path
    decoded: int = 0
    converted: dict[int, str] = field(default_factory=dict)


def check_image_size(size: int) -> None:
    """Refuse an image size outside :data:`SIZE_RANGE` before anything is read or written."""
    low, high = SIZE_RANGE
    if not low <= size <= high:
        raise CxrltError(
            f"--size {size} is out of range: the image size must be between {low} and {high} "
            "pixels; pass for example --size 224 (224 to 1024 are usual for chest X-rays)."
        )


def check_cache_writable(folder: Path | str) -> None:
    """Refuse a cache folder that cannot be created or written, before any work is done.

    Nothing is created: the nearest folder that exists must be a folder and writable.
    """
    existing = _nearest_existing(Path(folder))
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    problem = (
        f"{existing} is a file, not a folder"
        if not existing.is_dir()
        else f"{existing} is not writable (no permission, or a read-only file system)"
    )
    raise CxrltError(
        f"The image cache folder {folder} cannot be created or written: {problem}. "
        f"{_cache_dir_origin()} Set CXRLT_CACHE_DIR to a folder you can write "
        "(export CXRLT_CACHE_DIR=$HOME/cxrlt-cache), or fix that folder's permissions."
    )


def check_cache_space(n_images: int, size: int, folder: Path | str) -> None:
    """Refuse a cache of ``n_images`` at ``size`` px that the free space of ``folder`` (the
    cache folder, see :func:`cache_folder`) cannot hold, before it is created.

    A pixel file of the right length already there is reused, so it needs no more space.
    """
    folder = Path(folder)
    try:
        if (folder / IMAGES).stat().st_size == n_images * size * size:
            return
    except OSError:
        pass  # no cache yet
    _require_space(folder, cache_bytes(n_images, size), n_images, size)


def _require_space(folder: Path, needed: int, n_images: int, size: int) -> None:
    free = shutil.disk_usage(_nearest_existing(folder)).free
    if needed > free:
        raise CxrltError(
            f"Not enough disk space for the image cache: {n_images} images at {size}x{size} px "
            f"need {human_bytes(needed)} in {folder} {_space_parts(needed)}, and only "
            f"{human_bytes(free)} are free there: {_space_advice(n_images, size, free)}."
        )


def cache_bytes(n_images: int, size: int) -> int:
    """The disk space a cache of ``n_images`` at ``size`` px needs, with a margin."""
    return n_images * (size * size + _INDEX_ROW_BYTES) + _SPACE_MARGIN


def _space_parts(needed: int) -> str:
    """What the ``needed`` bytes of :func:`cache_bytes` are made of: the pixels (and index),
    and the margin beside them, which no --size changes."""
    return (
        f"({human_bytes(needed - _SPACE_MARGIN)} of pixels and index, and "
        f"{human_bytes(_SPACE_MARGIN)} kept free for the run directory and logs)"
    )


def _space_advice(n_images: int, size: int, free: int) -> str:
    """What would make room: a smaller --size only when a smaller one fits in ``free`` (the
    margin does not shrink with it), else more space or another disk."""
    room = (free - _SPACE_MARGIN) // max(n_images, 1) - _INDEX_ROW_BYTES
    fitting = math.isqrt(room) if room > 0 else 0
    if fitting >= size:  # it fits now: space was freed since, or others filled it for a while
        return _MOVE_CACHE
    if fitting >= SIZE_RANGE[0]:
        return f"pass --size {fitting} or smaller, {_MOVE_CACHE}"
    return (
        "a smaller --size would not make it fit (the margin of "
        f"{human_bytes(_SPACE_MARGIN)} does not shrink with it): {_MOVE_CACHE}"
    )


def human_bytes(count: float) -> str:
    """``count`` bytes in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _nearest_existing(folder: Path) -> Path:
    """``folder``, or the nearest of its parents that exists."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _cache_dir_origin() -> str:
    value = os.environ.get("CXRLT_CACHE_DIR")
    if value:
        return f"CXRLT_CACHE_DIR is set to {value}."
    return f"CXRLT_CACHE_DIR is not set, so the default {cache_dir()} is used."


def cache_folder(
    paths: Sequence[Path | str], size: int, *, letterbox: bool = False, part: str = ""
) -> Path:
    """The cache folder of a data set at one size: one per image folder, not per list of paths.

    The key is the cache version, size, letterbox and the folder that holds all the images,
    so a changed list of images (rows added or removed) finds its old cache and reuses it.
    ``part`` keeps lists that share a folder but not their images apart (the test images of
    CXR-LT 2026 sit beside the training ones): each keeps its own cache.
    """
    parents = {os.path.dirname(os.path.abspath(os.fspath(p))) for p in paths}
    try:
        common = os.path.commonpath(sorted(parents)) if parents else ""
    except ValueError:  # paths on different drives (Windows)
        common = ""
    key = json.dumps([CACHE_VERSION, int(size), bool(letterbox), common, *([part] if part else [])])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    name = f"{size}px{'-letterbox' if letterbox else ''}{f'-{part}' if part else ''}-{digest}"
    return cache_dir() / "images" / name


def prepare_images(
    paths: Sequence[Path | str],
    size: int,
    *,
    letterbox: bool = False,
    folder: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    console: Any = None,
) -> CachedImages:
    """Open the cache of ``paths`` when it is complete and fresh; else build, resume or refresh it.

    Rows whose file changed since it was decoded are decoded again; when the list of paths
    changed, a new cache is built that copies the rows still valid from the old one. Images that
    cannot be decoded are listed in ``failures`` (all of them, not just the first). ``workers``
    processes decode in parallel (default: all cores; 1 decodes in this process).
    ``console`` (a rich Console, default stderr) receives the progress bar and notes when
    ``progress`` is true. A folder that cannot be written or a disk without room for the cache
    stops with a CxrltError before anything is written; a disk that fills up while writing, too.
    """
    check_image_size(size)
    if workers is not None and workers < 1:
        raise CxrltError(f"workers must be at least 1, got {workers}.")
    abs_paths = [os.path.abspath(os.fspath(p)) for p in paths]
    n = len(abs_paths)
    folder = (
        Path(folder) if folder is not None else cache_folder(abs_paths, size, letterbox=letterbox)
    )
    check_cache_writable(folder)
    check_cache_space(n, size, folder)
    if progress and console is None:
        from rich.console import Console

        console = Console(stderr=True)
    say = (lambda text: console.print(text, highlight=False, soft_wrap=True)) if progress else None

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            prints = _fingerprints(abs_paths)
            rows = _open_or_create(folder, abs_paths, prints, size, letterbox, say)
            todo = np.flatnonzero(~rows.done)
            decoded = 0
            if todo.size:
                n_workers = workers or _cpu_count()
                decoded = _decode(
                    folder, abs_paths, todo, size, letterbox, n_workers, rows, say, console
                )
            images = _open_images(folder, n, size)
    except OSError as error:
        if error.errno not in _DISK_FULL:
            raise
        free = shutil.disk_usage(_nearest_existing(folder)).free
        needed = cache_bytes(n, size)
        raise CxrltError(
            f"The disk filled up while writing the image cache in {folder}: {n} images at "
            f"{size}x{size} px need {human_bytes(needed)} {_space_parts(needed)}, "
            f"{human_bytes(free)} are free now. The cache is "
            f"consistent: {_space_advice(n, size, free)}, then run the same command again to "
            "continue where it stopped."
        ) from None
    return CachedImages(
        images=images,
        failures=dict(sorted(rows.failures.items())),
        folder=folder,
        decoded=decoded,
        converted=dict(sorted(rows.converted.items())),
    )


# ----------------------------------------------------------------------------------- state


@dataclass
class _Rows:
    """Which rows are decoded, and what happened to them (only rows that are done)."""

    done: np.ndarray  # (N,) bool
    failures: dict[int, str]
    converted: dict[int, str]


@dataclass
class _State:
    """What a cache folder holds (pixels aside)."""

    paths: list[str]
    prints: np.ndarray  # (N, 3) int64: st_size, st_mtime_ns, st_ctime_ns
    rows: _Rows


def _fingerprint(path: str) -> tuple[int, int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1, -1)  # missing: decoding fails and says so; a file appearing later is new
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _fingerprints(paths: list[str]) -> np.ndarray:
    if len(paths) < 1000:
        rows = [_fingerprint(p) for p in paths]
    else:
        with ThreadPoolExecutor(_STAT_THREADS) as pool:
            rows = list(pool.map(_fingerprint, paths, chunksize=256))
    return np.array(rows, dtype=np.int64).reshape(len(paths), 3)


def _fresh(old: _State, prints: np.ndarray) -> np.ndarray:
    """The old rows still valid for files with ``prints``: done, and the file unchanged.

    A failed row is also stale when only its ctime changed: permissions restored.
    """
    failed = np.zeros(len(old.paths), bool)
    failed[list(old.rows.failures)] = True
    same = (old.prints[:, :2] == prints[:, :2]).all(axis=1)
    return old.rows.done & same & (~failed | (old.prints[:, 2] == prints[:, 2]))


def _load_state(folder: Path, size: int, letterbox: bool) -> _State | None:
    """The folder's cache if it is whole and made with these settings; else None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest != _manifest(manifest.get("n"), size, letterbox):
            return None
        n = int(manifest["n"])
        with open(folder / INDEX, encoding="utf-8", newline="") as file:
            rows = list(csv.reader(file))[1:]
        done = np.load(folder / DONE, allow_pickle=False)
        failures = json.loads((folder / FAILURES).read_text(encoding="utf-8"))
        converted = json.loads((folder / CONVERTED).read_text(encoding="utf-8"))
        images_bytes = (folder / IMAGES).stat().st_size
        if len(rows) != n or done.shape != (n,) or done.dtype != bool:
            return None
        if images_bytes != n * size**2 or any(int(row[0]) != i for i, row in enumerate(rows)):
            return None
        prints = np.array([row[2:5] for row in rows], dtype=np.int64).reshape(n, 3)
        return _State(
            [row[1] for row in rows],
            prints,
            _Rows(done, _done_rows(failures, done), _done_rows(converted, done)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _done_rows(notes: dict[str, Any], done: np.ndarray) -> dict[int, str]:
    """A JSON object of row -> text, keeping only rows that are done."""
    rows = {int(row): str(text) for row, text in notes.items()}
    return {row: text for row, text in rows.items() if 0 <= row < len(done) and done[row]}


def _manifest(n: Any, size: int, letterbox: bool) -> dict[str, Any]:
    return {"cache_version": CACHE_VERSION, "size": int(size), "letterbox": bool(letterbox), "n": n}


def _write_index(folder: Path, paths: list[str], prints: np.ndarray) -> None:
    def write(file: Any) -> None:
        out = csv.writer(file, lineterminator="\n")
        out.writerow(["row", "path", "st_size", "st_mtime_ns", "st_ctime_ns"])
        out.writerows(
            (i, path, *fingerprint)
            for i, (path, fingerprint) in enumerate(zip(paths, prints.tolist(), strict=True))
        )

    write_with(folder / INDEX, write)


def _write_done(folder: Path, done: np.ndarray) -> None:
    with atomic_path(folder / DONE) as tmp, open(tmp, "wb") as file:
        np.save(file, done, allow_pickle=False)


def _write_failures(folder: Path, failures: dict[int, str]) -> None:
    write_json(folder / FAILURES, {str(row): failures[row] for row in sorted(failures)})


def _write_converted(folder: Path, converted: dict[int, str]) -> None:
    write_json(folder / CONVERTED, {str(row): converted[row] for row in sorted(converted)})


def _open_or_create(
    folder: Path,
    paths: list[str],
    prints: np.ndarray,
    size: int,
    letterbox: bool,
    say: Any,
) -> _Rows:
    """The rows to continue from, after dropping those whose file changed."""
    n = len(paths)
    old = _load_state(folder, size, letterbox)
    if old is None or old.paths != paths:
        return _create(folder, paths, prints, size, letterbox, old, say)
    fresh = _fresh(old, prints)
    stale = np.flatnonzero(old.rows.done & ~fresh)
    rows = _Rows(
        fresh,
        {row: text for row, text in old.rows.failures.items() if fresh[row]},
        {row: text for row, text in old.rows.converted.items() if fresh[row]},
    )
    if (old.prints != prints).any():
        # Clear stale rows first: done must never point at pixels of another file version.
        # Rows not decoded yet get their new fingerprint too, or they would look stale later.
        if stale.size:
            _write_done(folder, fresh)
        _write_index(folder, paths, prints)
        _write_failures(folder, rows.failures)
        _write_converted(folder, rows.converted)
    if stale.size:
        if say:
            retried = sum(int(row) in old.rows.failures for row in stale)
            say(
                f"Image cache: {stale.size} of {n} images changed since they were last read "
                f"(e.g. row {stale[0]}, {paths[stale[0]]}"
                f"{f'; {retried} of them had failed' if retried else ''}); decoding them again."
            )
    elif say and not fresh.all():
        say(f"Image cache: resuming, {int(fresh.sum())} of {n} images already decoded.")
    return rows


def _create(
    folder: Path,
    paths: list[str],
    prints: np.ndarray,
    size: int,
    letterbox: bool,
    old: _State | None,
    say: Any,
) -> _Rows:
    """A new cache of ``paths``, with the old cache's rows still valid copied over (failed
    rows are tried again)."""
    n, row_bytes = len(paths), size * size
    rows = _Rows(np.zeros(n, bool), {}, {})
    partial = folder / _PARTIAL
    _require_space(folder, cache_bytes(n, size), n, size)  # the old file stays until then
    try:
        _allocate(partial, n * row_bytes)
        pairs = _copy_valid_rows(old, folder, partial, paths, prints, size) if old else []
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if pairs:
        rows.done[[new for new, _ in pairs]] = True
        rows.converted = {new: old.rows.converted[o] for new, o in pairs if o in old.rows.converted}
    if say and old is not None:
        say(
            f"Image cache: the list of images changed ({len(old.paths)} before, {n} now); "
            f"{len(pairs)} unchanged images copied from the old cache, "
            f"{n - len(pairs)} to decode."
        )
    elif say and n:
        say(f"Image cache: decoding {n} images to {size} px into {folder}")
    # Commit: drop the done mask first, so that a stop in between leaves an empty cache, never
    # a done mask that describes another images file.
    (folder / DONE).unlink(missing_ok=True)
    os.replace(partial, folder / IMAGES)
    _write_index(folder, paths, prints)
    _write_failures(folder, rows.failures)
    _write_converted(folder, rows.converted)
    write_json(folder / MANIFEST, _manifest(n, size, letterbox))
    _write_done(folder, rows.done)
    return rows


def _allocate(path: Path, nbytes: int) -> None:
    """Create ``path`` with ``nbytes`` reserved on disk: a full disk then fails here, with
    ENOSPC, rather than as a crash later (a write into a memory map of a sparse file past the
    free space is a SIGBUS)."""
    with open(path, "wb") as file:
        file.truncate(nbytes)
        if nbytes and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(file.fileno(), 0, nbytes)
            except OSError as error:
                if error.errno in _DISK_FULL:
                    raise
                # Unsupported by this file system: the file stays sparse.


def _copy_valid_rows(
    old: _State, folder: Path, partial: Path, paths: list[str], prints: np.ndarray, size: int
) -> list[tuple[int, int]]:
    """Copy the old cache's decoded rows whose file is unchanged into ``partial``; returns the
    (new row, old row) pairs copied."""
    valid = {
        (path, *fingerprint): row
        for row, (path, fingerprint) in enumerate(zip(old.paths, old.prints.tolist(), strict=True))
        if old.rows.done[row] and row not in old.rows.failures
    }
    pairs = [
        (new, valid[key])
        for new, key in enumerate(
            (path, *fingerprint) for path, fingerprint in zip(paths, prints.tolist(), strict=True)
        )
        if key in valid
    ]
    if pairs:
        new_rows, old_rows = np.array(pairs, dtype=np.int64).T
        source = np.memmap(folder / IMAGES, np.uint8, "r", shape=(len(old.paths), size, size))
        target = np.memmap(partial, np.uint8, "r+", shape=(len(paths), size, size))
        for start in range(0, len(pairs), _COPY_ROWS):
            block = slice(start, start + _COPY_ROWS)
            target[new_rows[block]] = source[old_rows[block]]
        target.flush()
        del source, target
    return pairs


def _open_images(folder: Path, n: int, size: int) -> np.ndarray:
    if n == 0:  # an empty file cannot be mapped
        empty = np.zeros((0, size, size), np.uint8)
        empty.flags.writeable = False
        return empty
    return np.memmap(folder / IMAGES, np.uint8, "r", shape=(n, size, size))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder per cache folder at a time (several ranks or runs may start together)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(folder / _LOCK, "a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX)
        except OSError as error:
            raise CxrltError(
                f"The image cache {folder} cannot be locked ({error.strerror}): its file "
                "system has no flock (Lustre without -o flock, some NFS set-ups). Set "
                "CXRLT_CACHE_DIR to a folder on a local disk, or mount it with flock."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


# -------------------------------------------------------------------------------- decoding


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use (containers, Slurm)
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _chunks(todo: np.ndarray, length: int) -> list[tuple[int, int]]:
    """``todo`` rows as (start, stop) runs of consecutive rows, none longer than ``length``."""
    runs = np.split(todo, np.flatnonzero(np.diff(todo) != 1) + 1)
    return [
        (int(run[k]), int(run[min(k + length, len(run)) - 1]) + 1)
        for run in runs
        for k in range(0, len(run), length)
    ]


_stop: Any = None  # in a worker process: the event the parent sets on Ctrl-C


def _decode_chunk(
    images_file: str, size: int, letterbox: bool, start: int, paths: list[str]
) -> tuple[int, dict[int, str], dict[int, str]]:
    """Decode rows ``start ..`` straight into the images file.

    Runs in a worker process: only paths go in and messages come out, never pixels. Returns
    how many rows from ``start`` were written (fewer than asked when stopped), the failures
    among them and the modes of those converted to grey.
    """
    out = np.memmap(images_file, np.uint8, "r+", offset=start * size * size,
                    shape=(len(paths), size, size))  # fmt: skip
    failures, converted, count = {}, {}, 0
    for path in paths:
        if _stop is not None and _stop.is_set():
            break
        try:
            decoded = decode_image(path, size, letterbox=letterbox)
            out[count] = decoded.pixels
            if decoded.converted_from:
                converted[start + count] = decoded.converted_from
        except CxrltError as error:
            out[count] = 0
            failures[start + count] = str(error)
        count += 1
    out.flush()  # the pixels are written before the parent marks the rows done
    del out
    return count, failures, converted


def _init_worker(stop: Any) -> None:
    """Workers leave Ctrl-C to the parent, which sets ``stop``: they then end their chunk early."""
    global _stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop = stop


def _decode(
    folder: Path,
    paths: list[str],
    todo: np.ndarray,
    size: int,
    letterbox: bool,
    workers: int,
    rows: _Rows,
    say: Any,
    console: Any,
) -> int:
    """Decode the ``todo`` rows, saving the done mask as chunks finish; returns how many."""
    length = max(1, min(_CHUNK, math.ceil(len(todo) / (workers * 4))))
    chunks = _chunks(todo, length)
    workers = min(workers, len(chunks))
    images_file = str(folder / IMAGES)
    state = {"saved": time.monotonic(), "notes_changed": False, "decoded": 0}
    bar = _Bar(console, len(paths), int(rows.done.sum())) if say else None

    def record(start: int, result: tuple[int, dict[int, str], dict[int, str]]) -> None:
        count, failures, converted = result
        rows.done[start : start + count] = True
        if failures or converted:
            rows.failures.update(failures)
            rows.converted.update(converted)
            state["notes_changed"] = True
        state["decoded"] += count
        if bar:
            bar.advance(count)
        if time.monotonic() - state["saved"] >= _SAVE_EVERY:
            save()

    def save() -> None:
        if state["notes_changed"]:  # before the done mask: a done row has its notes
            _write_failures(folder, rows.failures)
            _write_converted(folder, rows.converted)
            state["notes_changed"] = False
        _write_done(folder, rows.done)
        state["saved"] = time.monotonic()

    pool = None
    try:
        if workers == 1:
            with bar or _nothing():
                for start, stop in chunks:
                    record(
                        start, _decode_chunk(images_file, size, letterbox, start, paths[start:stop])
                    )
        else:
            context = multiprocessing.get_context()
            stop_event = context.Event()
            pool = ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(stop_event,)
            )
            # Submit (and so start the workers) before the progress bar starts its thread.
            futures: dict[Future, int] = {
                pool.submit(_decode_chunk, images_file, size, letterbox, a, paths[a:b]): a
                for a, b in chunks
            }
            with bar or _nothing():
                pending = set(futures)
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            record(futures[future], future.result())
                except KeyboardInterrupt:
                    # Running chunks stop after their current image: keep what they wrote.
                    stop_event.set()
                    for future in pending:
                        future.cancel()
                    for future in pending:
                        if not future.cancelled():
                            try:
                                record(futures[future], future.result())
                            except Exception:  # noqa: BLE001 - interrupted anyway
                                pass
                    raise
    except KeyboardInterrupt:
        if say:
            say(
                f"Image cache: interrupted with {int(rows.done.sum())} of {len(paths)} images "
                "decoded; run again to continue from there."
            )
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        save()
    if say and bar:
        say(bar.summary(state["decoded"]))
    return state["decoded"]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _Bar:
    """A rich progress bar of images decoded, with the rate of this run."""

    def __init__(self, console: Any, total: int, already: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("Decoding images"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} images/s"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("decode", total=total, completed=already, rate="-")
        self.started = time.monotonic()
        self.count = 0

    def __enter__(self) -> _Bar:
        self.started = time.monotonic()
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def rate(self) -> float:
        return self.count / max(time.monotonic() - self.started, 1e-9)

    def advance(self, count: int) -> None:
        self.count += count
        self.progress.update(self.task, advance=count, rate=f"{self.rate():.0f}")

    def summary(self, decoded: int) -> str:
        seconds = time.monotonic() - self.started
        return f"Image cache: decoded {decoded} images in {seconds:.1f} s ({self.rate():.0f}/s)."
