"""Memory benchmark: the peak resident memory of a training run, and of the cache reader over a
data set far larger than the machine's memory.

1. **A run on the embedded data.** ``cxrlt run --epochs 1`` (defaults otherwise: resnet18,
   64 px, batch 64) in a fresh process, against the baseline of a process that only imports
   torch, timm and the fastai modules cxrlt trains with: what any training process pays before
   it holds a single image. The image cache is prepared first (``cxrlt prepare``, not
   measured), so the run is the steady state a user sees from the second run on. Its peak RSS
   is the kernel's own high-water mark (``wait4``'s ``ru_maxrss``); peaks of anonymous and
   file-backed memory come from polling ``/proc/PID/status``.

   Goal: peak RSS at most 2x the import baseline. Training resnet18 at 64 px adds weights,
   gradients and two Adam moments (4 x 45 MB), a batch's activations (a few hundred MB at
   most) and 2,000 images of 4 KB: well under what the libraries cost to import (about
   0.8-1 GB). A run above 2x holds something it should not: a data set loaded whole,
   predictions or histories that grow without bound.

2. **The cache reader over 150,000 images at 512 px** (39 GB of pixels): the geometry of a
   CXR-LT training set. The cache is a real cache folder (index, manifest, done mask written
   by ``cxrlt.data.cache``'s own writers) whose pixel file is *sparse*: 39 GB apparent size,
   almost no disk. A fresh process opens it through ``prepare_images`` (the code path of every
   run: it finds the cache complete and memory-maps it) and iterates the training loader
   (``ArrayDataLoader`` over ``ArraySet``, batch 64, random order, uint8 -> float) for 2,000
   batches (128,000 images) or 3 minutes, whichever comes first, sampling its own
   ``/proc/self/status`` at every batch.

   Reported separately: *anonymous* memory (private: what loading the cache whole would blow
   up to 39 GB) and *file-backed* memory (pages of the mapped file: they count in RSS, but they
   are page cache that the kernel drops under pressure, clean and re-readable, so they do not
   make a machine run out of memory; they grow with what was read, up to what the kernel
   leaves them). Goal: the reader's private memory (peak anonymous memory less the same
   process's after its imports) at most 1% of the cache's size. The per-batch buffers (uint8
   batch, its float copy: 84 MB at 512 px) are the floor.

The sparse file is removed at the end, on failure too.

    python bench/memory.py               # full sizes (about 6 minutes)
    python bench/memory.py --quick       # a tiny run and a 2,000-image 64 px cache
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import RESULTS, Goal, write_results

PYTHON = sys.executable
CXRLT = str(Path(PYTHON).parent / "cxrlt") if (Path(PYTHON).parent / "cxrlt").exists() else "cxrlt"
MiB = 2**20
# What every training process imports before it does anything (cxrlt's own fastai modules).
IMPORTS = "import torch, timm, fastai.learner, fastai.data.core, fastai.callback.schedule"
N_CLASSES = 30  # CXR-LT 2026's labels: the targets the reader holds beside the pixels
POLL = 0.02  # seconds between samples of a child's /proc/PID/status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=150_000, help="images in the cache")
    parser.add_argument("--size", type=int, default=512, help="cache image side in pixels")
    parser.add_argument("--bs", type=int, default=64, help="reader batch size")
    parser.add_argument("--batches", type=int, default=2_000, help="most reader batches")
    parser.add_argument("--seconds", type=float, default=180.0, help="most reader seconds")
    parser.add_argument("--run-dataset", default=None, help="`cxrlt run --dataset` (default)")
    parser.add_argument("--run-size", type=int, default=None, help="`cxrlt run --size`")
    parser.add_argument("--run-bs", type=int, default=None, help="`cxrlt run --bs`")
    parser.add_argument("--tmp", type=Path, default=None, help="where the sparse cache goes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.size, args.batches, args.seconds = 2_000, 64, 100, 30.0
        args.run_dataset, args.run_size, args.run_bs = "synthetic:n_images=160,size=32", 32, 32
    data = [("--dataset", args.run_dataset), ("--size", args.run_size)]
    args.data_options = [str(x) for option in data if option[1] is not None for x in option]
    args.run_options = [*args.data_options, *(["--bs", str(args.run_bs)] if args.run_bs else [])]
    return args


# ------------------------------------------------------------------------------ measuring


def status(pid: int | str = "self") -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon, RssFile and RssShmem of a process, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    fields = dict(re.findall(r"^(Vm\w+|Rss\w+):\s+(\d+) kB", text, re.M))
    keys = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")
    return {key: int(fields.get(key, 0)) * 1024 for key in keys}


def measure(argv: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``argv`` to its end: its peak RSS (the kernel's, exact), peaks of its anonymous and
    file-backed memory (polled), and its wall time. Output goes to ``log``."""
    peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
    start = time.perf_counter()
    with open(log, "wb") as output:
        child = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                try:
                    for key, value in status(child.pid).items():
                        if key in peaks:
                            peaks[key] = max(peaks[key], value)
                except (OSError, ValueError):  # exited between wait4 and the read
                    pass
                time.sleep(POLL)
        except BaseException:
            child.kill()
            child.wait()
            raise
    child.returncode = os.waitstatus_to_exitcode(wait_status)
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(argv)} exited with {child.returncode}:\n{tail}")
    return {
        "peak_rss": usage.ru_maxrss * 1024,  # Linux: kB; the largest of the process tree
        "peak_anon_polled": peaks["RssAnon"],
        "peak_file_polled": peaks["RssFile"],
        "seconds": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------ the reader


def fake_paths(folder: Path, n: int) -> list[str]:
    """The source paths the sparse cache claims: none exists, so each one's fingerprint is
    (-1, -1), which the index records: the cache looks complete and fresh to its reader."""
    return [str(folder / "source" / f"{i:06d}.png") for i in range(n)]


def make_sparse_cache(folder: Path, n: int, size: int) -> dict[str, int]:
    """A complete cache folder of ``n`` images at ``size`` px, written by the cache module's
    own writers, whose pixel file is one hole: apparent size n * size^2, no disk blocks."""
    import numpy as np

    from cxrlt.data import cache
    from cxrlt.io import write_json

    nbytes = n * size * size
    free = shutil.disk_usage(folder).free
    if free < 1024 * MiB:
        raise SystemExit(f"Only {free / MiB:.0f} MiB free in {folder}: need 1 GiB for the index")
    paths = fake_paths(folder, n)
    with open(folder / cache.IMAGES, "wb") as file:
        file.truncate(nbytes)  # a hole: reads as zeros, allocates nothing
    allocated = os.stat(folder / cache.IMAGES).st_blocks * 512
    if allocated > nbytes // 100 + MiB:
        raise SystemExit(f"{folder} does not make sparse files ({allocated} bytes allocated)")
    cache._write_index(folder, paths, cache._fingerprints(paths))
    cache._write_failures(folder, {})
    cache._write_converted(folder, {})
    write_json(folder / cache.MANIFEST, cache._manifest(n, size, False))
    cache._write_done(folder, np.ones(n, bool))
    return {"bytes": nbytes, "allocated": allocated}


def reader_child(folder: Path, n: int, size: int, bs: int, batches: int, seconds: float) -> dict:
    """In a fresh process: open the cache as a run does, iterate the training loader."""
    import numpy as np

    from cxrlt.data.cache import prepare_images
    from cxrlt.data.loaders import ArrayDataLoader, ArraySet

    imported = status()
    cached = prepare_images(fake_paths(folder, n), size, folder=folder, progress=False)
    if cached.decoded or not isinstance(cached.images, np.memmap):
        raise RuntimeError(f"the cache was not opened as a complete memory map ({cached})")
    targets = np.random.default_rng(0).random((n, N_CLASSES)) < 0.05
    loader = ArrayDataLoader(
        ArraySet(cached.images, np.arange(n), targets), bs=bs, shuffle=True, drop_last=True
    )
    opened = status()
    peak = {"RssAnon": opened["RssAnon"], "RssFile": opened["RssFile"]}
    start, count, shape = time.perf_counter(), 0, None
    for images, _ in loader:  # holding the batch: its buffers are in the sample
        now = status()
        peak = {key: max(value, now[key]) for key, value in peak.items()}
        count, shape = count + 1, list(images.shape)
        if count >= batches or time.perf_counter() - start >= seconds:
            break
    return {
        "imported": imported,
        "opened": opened,
        "peak_anon": peak["RssAnon"],
        "peak_file": peak["RssFile"],
        "peak_rss": status()["VmHWM"],
        "bs": bs,
        "batches": count,
        "images": count * bs,
        "bytes_read": count * bs * size * size,
        "batch_shape": shape,
        "seconds": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------------ main


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the sparse file and temporary folders go."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def measure_run(args: argparse.Namespace, work: Path) -> dict[str, dict[str, float]]:
    """The import baseline and ``cxrlt run --epochs 1``, after an unmeasured ``prepare``."""
    prepare = [CXRLT, "prepare", *args.data_options]
    subprocess.run(prepare, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    baseline = measure([PYTHON, "-W", "ignore", "-c", IMPORTS], work / "baseline.log")
    run_argv = [CXRLT, "run", "--epochs", "1", "--out", str(work / "run"), *args.run_options]
    run = measure(run_argv, work / "run.log")
    return {"import_baseline": baseline, "run": run}


def measure_reader(args: argparse.Namespace, work: Path) -> dict:
    folder = work / "cache"
    folder.mkdir()
    sparse = make_sparse_cache(folder, args.images, args.size)
    result = work / "reader.json"
    argv = [PYTHON, __file__, "_reader", str(folder), str(args.images), str(args.size)]
    argv += [str(args.bs), str(args.batches), str(args.seconds), str(result)]
    process = measure(argv, work / "reader.log")
    reader = json.loads(result.read_text())
    reader["process_peak_rss"] = process["peak_rss"]
    reader["cache"] = {**sparse, "images": args.images, "size": args.size}
    return reader


def ratios(run: dict, reader: dict) -> dict[str, float]:
    """Every ratio of the report, from the raw figures (the tests recompute them)."""
    cache_bytes = reader["cache"]["bytes"]
    private = reader["peak_anon"] - reader["imported"]["RssAnon"]
    batch_bytes = reader["bs"] * reader["cache"]["size"] ** 2 * (1 + 4)  # uint8 + float32
    return {
        "run_peak_rss_vs_import_baseline": run["run"]["peak_rss"]
        / run["import_baseline"]["peak_rss"],
        "reader_private_vs_cache": private / cache_bytes,
        "reader_peak_anon_vs_cache": reader["peak_anon"] / cache_bytes,
        "reader_peak_file_vs_cache": reader["peak_file"] / cache_bytes,
        "reader_peak_file_vs_bytes_read": reader["peak_file"] / reader["bytes_read"],
        "reader_peak_rss_vs_import_baseline": reader["peak_rss"]
        / run["import_baseline"]["peak_rss"],
        "reader_private_vs_batch_buffers": private / batch_bytes,
    }


def table(run: dict, reader: dict, r: dict[str, float], args: argparse.Namespace) -> str:
    base, train = run["import_baseline"], run["run"]
    cache = reader["cache"]
    private = reader["peak_anon"] - reader["imported"]["RssAnon"]
    command = " ".join(["cxrlt run --epochs 1", *args.run_options])
    rows = [
        "| process | peak RSS MiB | peak anonymous MiB | peak file-backed MiB | ratio |",
        "|---|---|---|---|---|",
        f"| import torch + timm + fastai (baseline) | {base['peak_rss'] / MiB:.0f} | "
        f"{base['peak_anon_polled'] / MiB:.0f} | {base['peak_file_polled'] / MiB:.0f} | 1.00 |",
        f"| `{command}` | {train['peak_rss'] / MiB:.0f} | "
        f"{train['peak_anon_polled'] / MiB:.0f} | {train['peak_file_polled'] / MiB:.0f} | "
        f"{r['run_peak_rss_vs_import_baseline']:.2f} |",
        f"| cache reader | {reader['peak_rss'] / MiB:.0f} | {reader['peak_anon'] / MiB:.0f} | "
        f"{reader['peak_file'] / MiB:.0f} | {r['reader_peak_rss_vs_import_baseline']:.2f} |",
    ]
    return "\n".join(
        [
            *rows,
            "",
            f"Cache reader: {cache['images']:,} images at {cache['size']} px = "
            f"{cache['bytes'] / 2**30:.1f} GiB (sparse file, {cache['allocated'] / MiB:.1f} MiB "
            f"on disk), memory-mapped; {reader['batches']:,} random batches of "
            f"{args.bs} ({reader['images']:,} images) in {reader['seconds']:.0f} s.",
            f"- private memory (peak anonymous less after imports): {private / MiB:.0f} MiB = "
            f"{r['reader_private_vs_cache']:.2e} of the cache, "
            f"{r['reader_private_vs_batch_buffers']:.1f}x one batch's uint8 + float32 buffers",
            f"- peak anonymous memory, imports included: {reader['peak_anon'] / MiB:.0f} MiB = "
            f"{r['reader_peak_anon_vs_cache']:.2e} of the cache",
            f"- peak file-backed memory: {reader['peak_file'] / MiB:.0f} MiB = "
            f"{r['reader_peak_file_vs_cache']:.2e} of the cache, "
            f"{r['reader_peak_file_vs_bytes_read']:.2f} of the {reader['bytes_read'] / 2**30:.1f} "
            "GiB read: mapped page cache, counted in RSS but clean, so the kernel reclaims it "
            "under pressure",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    _stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="cxrlt-memory-", dir=args.tmp))
    try:
        run = measure_run(args, work)
        reader = measure_reader(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the sparse cache and the run folder
    r = ratios(run, reader)
    goals = [
        Goal("run peak RSS / import baseline", "<=", 2.0, r["run_peak_rss_vs_import_baseline"]),
        Goal("reader private memory / cache size", "<=", 0.01, r["reader_private_vs_cache"]),
    ]
    figures = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        **run,
        "reader": reader,
        "ratios": r,
    }
    return write_results(args.out, "memory", figures, table(run, reader, r, args), goals)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_reader"]:
        folder, n, size, bs, batches, seconds, out = sys.argv[2:]
        found = reader_child(Path(folder), int(n), int(size), int(bs), int(batches), float(seconds))
        Path(out).write_text(json.dumps(found))
    else:
        main()
