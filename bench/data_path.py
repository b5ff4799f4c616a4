"""Data-path benchmark: naive per-epoch decoding against cxrlt's prepared cache.

Generates a few hundred 16-bit PNGs of realistic size (about 2,000 pixels a side, 12 bits
used), then measures in one run:

1. naive: decode + resize every image on every access (images/s, one process);
2. ``prepare``: decode once into the uint8 cache, with 1 worker and with every core;
3. the cached loader: cxrlt's training DataLoader over the memory-mapped cache at 224 and 512
   pixels, alone (the data path) and with batch augmentation run on this CPU (on a GPU the
   augmentation runs on the device).

    python bench/data_path.py                 # 200 images, a few minutes on 2 cores
    python bench/data_path.py --images 40     # a quick look

Figures are ratios against the naive baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cxrlt.data.augment import BatchAugment
from cxrlt.data.cache import prepare_images
from cxrlt.data.images import read_image
from cxrlt.data.loaders import ArrayDataLoader, ArraySet
from cxrlt.data.synthetic import draw_chest

H100_CONVNEXT_LARGE_512 = 500  # images/s an H100 trains ConvNeXt-Large at 512 px (the goal)


def make_pngs(folder: Path, n: int, side: int, seed: int = 0) -> list[Path]:
    """``n`` distinct 16-bit PNGs, ``side`` pixels high, from a few drawn bases plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = []
    for i in range(4):
        labels = np.zeros(30, np.uint8)
        labels[rng.integers(1, 30, 2)] = 1
        small = draw_chest(labels, 512, np.random.default_rng([seed, i])).astype(np.float32)
        big = Image.fromarray(small, mode="F").resize((side * 5 // 6, side), Image.BILINEAR)
        bases.append(np.asarray(big))
    paths = []
    for i in range(n):
        noise = rng.normal(0, 40, bases[0].shape).astype(np.float32)
        pixels = np.clip(bases[i % 4] + noise, 0, 4095).astype(np.uint16)
        path = folder / f"{i:05d}.png"
        Image.fromarray(pixels).save(path, compress_level=1)  # decodes like level 6, saves faster
        paths.append(path)
    return paths


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def naive(paths: list[Path], size: int) -> float:
    start = time.perf_counter()
    for path in paths:
        torch.from_numpy(read_image(path, size)).float().div(255)
    return rate(len(paths), time.perf_counter() - start)


def prepare(paths: list[Path], size: int, workers: int, folder: Path) -> float:
    start = time.perf_counter()
    prepare_images(paths, size, folder=folder, workers=workers, progress=False)
    return rate(len(paths), time.perf_counter() - start)


def cached_loader(
    paths: list[Path], size: int, folder: Path, epochs: int, augment: bool, bs: int = 64
) -> float:
    cached = prepare_images(paths, size, folder=folder, progress=False)
    n = len(paths)
    dataset = ArraySet(cached.images, np.arange(n), np.zeros((n, 30), np.uint8))
    loader = ArrayDataLoader(
        dataset, bs=bs, shuffle=True, augment=BatchAugment() if augment else None, seed=0
    )
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for images, _targets in loader:
            seen += len(images)
    return rate(seen, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/data_path.json"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = make_pngs(tmp / "png", args.images, args.side)
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 2**20
        print(
            f"made {len(paths)} PNGs of {args.side} px ({mb:.1f} MB each) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        results: dict[str, float] = {"images": len(paths), "side": args.side, "cores": cores}
        for size in (224, 512):
            results[f"naive_{size}"] = naive(paths, size)
            results[f"prepare_1worker_{size}"] = prepare(paths, size, 1, tmp / f"c1-{size}")
            results[f"prepare_all_{size}"] = prepare(paths, size, cores, tmp / f"call-{size}")
            cache = tmp / f"call-{size}"
            results[f"loader_{size}"] = cached_loader(paths, size, cache, epochs=10, augment=False)
            results[f"loaderaug_{size}"] = cached_loader(paths, size, cache, epochs=3, augment=True)
            print({k: round(v, 1) for k, v in results.items() if str(size) in k})

    lines = [
        f"| size | naive decode (img/s) | prepare, 1 worker | prepare, {cores} workers "
        "(per core) | cached loader | loader / naive | loader + CPU augmentation |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in (224, 512):
        r = {k.rsplit("_", 1)[0]: v for k, v in results.items() if k.endswith(f"_{size}")}
        lines.append(
            f"| {size} | {r['naive']:.1f} | {r['prepare_1worker']:.1f} | "
            f"{r['prepare_all']:.1f} ({r['prepare_all'] / cores:.1f}) | {r['loader']:.0f} | "
            f"{r['loader'] / r['naive']:.0f}x | {r['loaderaug']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    goal = results["loader_512"] >= H100_CONVNEXT_LARGE_512
    print(
        f"goal: loader >= 20x naive: {results['loader_224'] / results['naive_224'] >= 20}, "
        f"> {H100_CONVNEXT_LARGE_512} img/s at 512 px: {goal}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**results, "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
