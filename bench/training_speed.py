"""Training-speed benchmark: mixed precision, channels-last, EMA and clipping against fp32.

Each variant is a whole ``cxrlt run`` on the same data, backbone and seed, timed after a
one-epoch warm-up run of the same variant (data generation, the image cache, the kernels of
its precision), so the timed runs differ only in the training options. Figures are wall-time
ratios against the fp32 run of the same invocation, with the validation mAP beside them to
show speed is not bought with accuracy.

    python bench/training_speed.py                      # on a GPU: fp32, bf16, fp16 variants
    python bench/training_speed.py --quick              # tiny CPU smoke check

On a CPU only the 32-bit variants run (fastai's mixed precision is CUDA autocast).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console

from cxrlt.options import RunOptions
from cxrlt.workflows.run import run
from cxrlt.workflows.setup import pick_device

# name -> the options that differ from the fp32 baseline
GPU_VARIANTS = {
    "fp32": {"precision": "32", "channels_last": False},
    "bf16 + channels-last": {"precision": "bf16", "channels_last": True},
    "fp16 + channels-last": {"precision": "fp16", "channels_last": True},
    "bf16 + channels-last + EMA + clip": {
        "precision": "bf16",
        "channels_last": True,
        "ema": 0.999,
        "grad_clip": 1.0,
    },
}
CPU_VARIANTS = {
    "fp32": {"precision": "32", "channels_last": False},
    "fp32 + EMA + clip": {
        "precision": "32",
        "channels_last": False,
        "ema": 0.999,
        "grad_clip": 1.0,
    },
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic", help="data set spec")
    parser.add_argument("--arch", default="convnext_atto")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--bs", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch (smoke check)")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.arch, args.size, args.bs, args.epochs = (
            "synthetic:n_images=160,size=32",
            "resnet18",
            32,
            32,
            1,
        )
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = pick_device(args.device)
    variants = GPU_VARIANTS if device.type == "cuda" else CPU_VARIANTS
    quiet = Console(quiet=True)
    work = Path(tempfile.mkdtemp(prefix="cxrlt-speed-"))
    base = RunOptions(
        dataset=args.data,
        arch=args.arch,
        size=args.size,
        bs=args.bs,
        epochs=args.epochs,
        device=args.device,
        select="last",
        overwrite=True,
    )
    rows = []
    for name, changes in variants.items():
        run(dataclasses.replace(base, epochs=1, out=work / "warm-up", **changes), quiet)
        start = time.perf_counter()
        _, report = run(dataclasses.replace(base, out=work / str(len(rows)), **changes), quiet)
        rows.append({"variant": name, "seconds": time.perf_counter() - start, **report.overall})
    baseline = rows[0]["seconds"]
    lines = [
        f"{args.arch}, {args.size} px, batch {args.bs}, {args.epochs} epochs on {args.data}, "
        f"device {device}" + (f" ({_gpu_name()})" if device.type == "cuda" else ""),
        "",
        "| variant | wall time vs fp32 | speed-up | valid mAP |",
        "|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["seconds"] / baseline
        lines.append(f"| {row['variant']} | {ratio:.2f} | {1 / ratio:.2f}x | {row['mAP']:.3f} |")
    table = "\n".join(lines)
    Console().print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    figures = {"settings": {k: str(v) for k, v in vars(args).items()}, "runs": rows, "table": table}
    (args.out / "training_speed.json").write_text(json.dumps(figures, indent=2) + "\n")
    (args.out / "training_speed.md").write_text(table + "\n")
    return figures


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name()


if __name__ == "__main__":
    main()
