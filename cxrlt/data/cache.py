"""Decode every image once into a compact uint8 cache that training memory-maps.

Decoding a large 16-bit PNG costs tens of milliseconds, so a data set is decoded once, resized
to the training size, and stored as one raw ``(N, size, size)`` uint8 file. The build uses
every core, shows progress, survives Ctrl-C (a rerun continues where it stopped) and notices
when source images changed.

A cache folder holds:

- ``images.u8``: the pixels, ``N * size * size`` bytes, row ``i`` for ``paths[i]``;
- ``index.csv``: row, absolute path, and the file's ``st_size`` and ``st_mtime_ns`` when it
  was decoded (its fingerprint);
- ``manifest.json``: cache version, size, letterbox and N;
- ``done.npy``: one bool per row, set only once the row's pixels are flushed: the resume point;
- ``failures.json``: row -> message for images that could not be decoded (their slot is zeros).

Small files are written atomically, so an interruption leaves the old version or the new one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import multiprocessing
import os
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt.data.images import read_image
from cxrlt.errors import CxrltError
from cxrlt.io import atomic_path, cache_dir, write_json, write_with

CACHE_VERSION = 1  # bump when decoding changes: old caches are then left alone, not reused

IMAGES, INDEX, MANIFEST, DONE, FAILURES = (
    "images.u8",
    "index.csv",
    "manifest.json",
    "done.npy",
    "failures.json",
)
_PARTIAL = "images.u8.partial"  # a new images file while rows are copied into it
_LOCK = ".lock"
_CHUNK = 32  # most rows per task: the work lost to a hard kill, and Ctrl-C's wait
_SAVE_EVERY = 1.0  # seconds between saves of the done mask while decoding
_STAT_THREADS = 16  # stat() in parallel: it waits on the file system (slow on network drives)
_COPY_ROWS = 256  # rows copied at a time from an old cache


@dataclass(frozen=True)
class CachedImages:
    """Decoded images of a list of paths, in that order.

    ``images`` is a read-only ``(N, size, size)`` uint8 memory map; ``failures`` maps the row of
    each image that could not be decoded to the reason (its slot is zeros); ``decoded`` counts
    the images this call decoded (0 when the cache was already complete).
    """

    images: np.ndarray
    failures: dict[int, str]
    folder: Path
    decoded: int = 0


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
    ``progress`` is true.
    """
    if size < 1:
        raise CxrltError(f"The image size must be at least 1 pixel, got {size}.")
    if workers is not None and workers < 1:
        raise CxrltError(f"workers must be at least 1, got {workers}.")
    abs_paths = [os.path.abspath(os.fspath(p)) for p in paths]
    folder = (
        Path(folder) if folder is not None else cache_folder(abs_paths, size, letterbox=letterbox)
    )
    if progress and console is None:
        from rich.console import Console

        console = Console(stderr=True)
    say = (lambda text: console.print(text, highlight=False, soft_wrap=True)) if progress else None

    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        prints = _fingerprints(abs_paths)
        done, failures = _open_or_create(folder, abs_paths, prints, size, letterbox, say)
        todo = np.flatnonzero(~done)
        decoded = 0
        if todo.size:
            n_workers = workers or _cpu_count()
            decoded = _decode(
                folder, abs_paths, todo, size, letterbox, n_workers, done, failures, say, console
            )
        images = _open_images(folder, len(abs_paths), size)
    return CachedImages(
        images=images, failures=dict(sorted(failures.items())), folder=folder, decoded=decoded
    )


# ----------------------------------------------------------------------------------- state


@dataclass
class _State:
    """What a cache folder holds (pixels aside)."""

    paths: list[str]
    prints: np.ndarray  # (N, 2) int64: st_size, st_mtime_ns
    done: np.ndarray  # (N,) bool
    failures: dict[int, str]  # only rows that are done


def _fingerprint(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)  # missing: decoding fails and says so; a file appearing later is new
    return (stat.st_size, stat.st_mtime_ns)


def _fingerprints(paths: list[str]) -> np.ndarray:
    if len(paths) < 1000:
        rows = [_fingerprint(p) for p in paths]
    else:
        with ThreadPoolExecutor(_STAT_THREADS) as pool:
            rows = list(pool.map(_fingerprint, paths, chunksize=256))
    return np.array(rows, dtype=np.int64).reshape(len(paths), 2)


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
        images_bytes = (folder / IMAGES).stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(rows) != n or done.shape != (n,) or done.dtype != bool or images_bytes != n * size**2:
        return None
    if any(int(row[0]) != i for i, row in enumerate(rows)):
        return None
    prints = np.array([(int(r[2]), int(r[3])) for r in rows], dtype=np.int64).reshape(n, 2)
    failures = {int(row): str(message) for row, message in failures.items()}
    failures = {row: message for row, message in failures.items() if 0 <= row < n and done[row]}
    return _State([row[1] for row in rows], prints, done, failures)


def _manifest(n: Any, size: int, letterbox: bool) -> dict[str, Any]:
    return {"cache_version": CACHE_VERSION, "size": int(size), "letterbox": bool(letterbox), "n": n}


def _write_index(folder: Path, paths: list[str], prints: np.ndarray) -> None:
    def write(file: Any) -> None:
        out = csv.writer(file, lineterminator="\n")
        out.writerow(["row", "path", "st_size", "st_mtime_ns"])
        out.writerows(
            (i, p, s, m) for i, (p, (s, m)) in enumerate(zip(paths, prints.tolist(), strict=True))
        )

    write_with(folder / INDEX, write)


def _write_done(folder: Path, done: np.ndarray) -> None:
    with atomic_path(folder / DONE) as tmp, open(tmp, "wb") as file:
        np.save(file, done, allow_pickle=False)


def _write_failures(folder: Path, failures: dict[int, str]) -> None:
    write_json(folder / FAILURES, {str(row): failures[row] for row in sorted(failures)})


def _open_or_create(
    folder: Path,
    paths: list[str],
    prints: np.ndarray,
    size: int,
    letterbox: bool,
    say: Any,
) -> tuple[np.ndarray, dict[int, str]]:
    """The done mask and failures to continue from, after dropping rows whose file changed."""
    n = len(paths)
    old = _load_state(folder, size, letterbox)
    if old is not None and old.paths == paths:
        fresh = old.done & (old.prints == prints).all(axis=1)
        stale = np.flatnonzero(old.done & ~fresh)
        failures = {row: message for row, message in old.failures.items() if fresh[row]}
        if (old.prints != prints).any():
            # Clear stale rows first: done must never point at pixels of another file version.
            # Rows not decoded yet get their new fingerprint too, or they would look stale later.
            if stale.size:
                _write_done(folder, fresh)
            _write_index(folder, paths, prints)
            _write_failures(folder, failures)
        if stale.size:
            if say:
                say(
                    f"Image cache: {stale.size} of {n} images changed since they were decoded "
                    f"(e.g. row {stale[0]}, {paths[stale[0]]}); decoding them again."
                )
        elif say and not fresh.all():
            say(f"Image cache: resuming, {int(fresh.sum())} of {n} images already decoded.")
        return fresh, failures
    return _create(folder, paths, prints, size, letterbox, old, say)


def _create(
    folder: Path,
    paths: list[str],
    prints: np.ndarray,
    size: int,
    letterbox: bool,
    old: _State | None,
    say: Any,
) -> tuple[np.ndarray, dict[int, str]]:
    """A new cache of ``paths``, with the old cache's rows that are still valid copied over."""
    n, row_bytes = len(paths), size * size
    done, failures = np.zeros(n, bool), {}
    partial = folder / _PARTIAL
    with open(partial, "wb") as file:
        file.truncate(n * row_bytes)  # final size up front (sparse where the file system can)
    if old is not None:
        valid = {
            (path, s, m): row
            for row, (path, (s, m)) in enumerate(zip(old.paths, old.prints.tolist(), strict=True))
            if old.done[row]
        }
        pairs = [
            (new, valid[(path, s, m)])
            for new, (path, (s, m)) in enumerate(zip(paths, prints.tolist(), strict=True))
            if (path, s, m) in valid
        ]
        if pairs:
            new_rows, old_rows = np.array(pairs, dtype=np.int64).T
            source = np.memmap(folder / IMAGES, np.uint8, "r", shape=(len(old.paths), size, size))
            target = np.memmap(partial, np.uint8, "r+", shape=(n, size, size))
            for start in range(0, len(pairs), _COPY_ROWS):
                block = slice(start, start + _COPY_ROWS)
                target[new_rows[block]] = source[old_rows[block]]
            target.flush()
            del source, target
            done[new_rows] = True
            failures = {new: old.failures[o] for new, o in pairs if o in old.failures}
        if say:
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
    _write_failures(folder, failures)
    write_json(folder / MANIFEST, _manifest(n, size, letterbox))
    _write_done(folder, done)
    return done, failures


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
        fcntl.flock(file, fcntl.LOCK_EX)
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
) -> tuple[int, dict[int, str]]:
    """Decode rows ``start ..`` straight into the images file.

    Runs in a worker process: only paths go in and messages come out, never pixels. Returns
    how many rows from ``start`` were written (fewer than asked when stopped) and the failures
    among them.
    """
    out = np.memmap(images_file, np.uint8, "r+", offset=start * size * size,
                    shape=(len(paths), size, size))  # fmt: skip
    failures, count = {}, 0
    for path in paths:
        if _stop is not None and _stop.is_set():
            break
        try:
            out[count] = read_image(path, size, letterbox=letterbox)
        except CxrltError as error:
            out[count] = 0
            failures[start + count] = str(error)
        count += 1
    out.flush()  # the pixels are written before the parent marks the rows done
    del out
    return count, failures


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
    done: np.ndarray,
    failures: dict[int, str],
    say: Any,
    console: Any,
) -> int:
    """Decode the ``todo`` rows, saving the done mask as chunks finish; returns how many."""
    length = max(1, min(_CHUNK, math.ceil(len(todo) / (workers * 4))))
    chunks = _chunks(todo, length)
    workers = min(workers, len(chunks))
    images_file = str(folder / IMAGES)
    state = {"saved": time.monotonic(), "failures_changed": False, "decoded": 0}
    bar = _Bar(console, len(paths), int(done.sum())) if say else None

    def record(start: int, result: tuple[int, dict[int, str]]) -> None:
        count, chunk_failures = result
        done[start : start + count] = True
        if chunk_failures:
            failures.update(chunk_failures)
            state["failures_changed"] = True
        state["decoded"] += count
        if bar:
            bar.advance(count)
        if time.monotonic() - state["saved"] >= _SAVE_EVERY:
            save()

    def save() -> None:
        if state["failures_changed"]:  # before the done mask: a done row has its failure
            _write_failures(folder, failures)
            state["failures_changed"] = False
        _write_done(folder, done)
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
                f"Image cache: interrupted with {int(done.sum())} of {len(paths)} images "
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
