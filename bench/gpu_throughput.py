"""GPU training throughput: cxrlt's learner against a plain PyTorch loop, then DDP.

Two arms in one process, on the same GPU, the same backbone (timm, no pretrained weights),
image size, batch and precision; each runs ``--warmup`` steps, then ``--steps`` timed steps
between two ``torch.cuda.synchronize``; peak GPU memory is ``torch.cuda.max_memory_allocated``,
reset before each arm (whose model, optimiser and data are freed before the next):

- ``plain``: a hand-written loop: the timm model (``in_chans=1``, 30 outputs), torch's AdamW
  (its default implementation), BCE-with-logits, bf16 autocast, channels-last, random uint8
  batches already on the GPU (made float and normalised on it, as cxrlt's model does);
- ``cxrlt``: the learner as ``cxrlt run`` builds it
  (``cxrlt.workflows.training.train_and_checkpoint``): the cached
  uint8 loader over the embedded synthetic data set (drawn at ``--draw-size``, resized into
  the cache at ``--size``), ``cxr_learner`` with the default head and loss, the callbacks a
  default run adds (non-finite loss guard, epoch checkpoint, run log, ``--precision`` and
  ``--channels-last`` through ``step_callbacks``), ``fit_one_cycle`` inside
  ``distributed(...)``, and the seeding ``cxrlt run`` does (``seed_run``: cuDNN in benchmark
  mode on a GPU). Timing stops before the epoch ends, so no
  validation is timed.

With ``--ddp`` (under ``torchrun``; ``bench/gpu.sh`` launches it when it finds several GPUs)
every rank runs the cxrlt arm data-parallel, and rank 0 adds the multi-GPU images/s and the
scaling efficiency against the one-GPU cxrlt arm to the ``gpu.json`` in ``--out``.

``--dry-run`` runs the same code on the CPU with a tiny model (resnet18, 32 px, batch 8,
1 + 2 steps, fp32: fastai's mixed precision is CUDA autocast), to check the plumbing; its
figures mean nothing. Run everything through ``bash bench/gpu.sh`` (see there).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from harness import RESULTS, Goal, write_results

NAME = "gpu"
N_CLASSES = 30  # the embedded data set's (CXR-LT 2026's) classes
VALID_FRAC = 0.1  # the validation split is built, never timed
POOL = 4  # batches of random images the plain arm cycles through
MEAN, STD = 0.449, 0.226  # greyscale normalisation, as CXRClassifier does
# Goals: cxrlt's per-step extras (callbacks, loader, fastai's optimiser) within 10% of a plain
# loop; memory within 10% (both hold the same model, gradients and Adam state); DDP on one
# machine loses at most 15% to gradient all-reduce.
THROUGHPUT_RATIO, MEMORY_RATIO, SCALING = 0.9, 1.1, 0.85


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="convnext_large", help="timm backbone")
    parser.add_argument("--size", type=int, default=512, help="image side, pixels")
    parser.add_argument("--bs", type=int, default=32, help="images per step (per GPU in DDP)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--precision", choices=("bf16", "32"), default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--draw-size", type=int, default=64, help="side the synthetic images are drawn at"
    )
    parser.add_argument(
        "--gpus", type=int, default=1, help="ranks of the DDP stage: the data set is sized for it"
    )
    parser.add_argument("--ddp", action="store_true", help="the DDP stage, under torchrun")
    parser.add_argument("--dry-run", action="store_true", help="tiny CPU run of the same code")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.arch, args.size, args.bs, args.warmup, args.steps = "resnet18", 32, 8, 1, 2
        args.precision, args.draw_size = "32", 32
    if args.warmup < 1 or args.steps < 1 or args.bs < 1 or args.gpus < 1:
        parser.error("--warmup, --steps, --bs and --gpus must be at least 1")
    return args


# ------------------------------------------------------------------------------------ helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    """Drop what the last arm left, then start counting peak memory afresh."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def arm_figures(args: argparse.Namespace, seconds: float, device: torch.device, world: int = 1):
    images = world * args.bs * args.steps
    return {
        "seconds": round(seconds, 4),
        "ms_per_step": round(1000 * seconds / args.steps, 2),
        "images_per_s": round(images / seconds, 2),
        "peak_memory_gib": peak_gib(device),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


def dataset_spec(args: argparse.Namespace) -> str:
    """The embedded synthetic set, large enough that every rank of the DDP stage gets
    ``warmup + steps`` full training batches in one epoch."""
    train = args.bs * (args.warmup + args.steps + 1) * args.gpus
    n_images = max(32, math.ceil(1.1 * train / (1 - VALID_FRAC)) + 16)
    return f"synthetic:n_images={n_images},size={max(16, min(args.draw_size, args.size))}"


def pick(args: argparse.Namespace) -> torch.device:
    if args.dry_run:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("No GPU visible to torch: run on a GPU machine, or pass --dry-run.")
    return torch.device("cuda")


# --------------------------------------------------------------------------------------- arms


def plain_arm(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """A hand-written training loop: timm model, AdamW, BCE, autocast, channels-last."""
    import timm

    free(device)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = timm.create_model(args.arch, pretrained=False, in_chans=1, num_classes=N_CLASSES)
    model = model.to(device, memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    loss_func = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(0)
    shape = (POOL * args.bs, 1, args.size, args.size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator).to(device)
    targets = (torch.rand(POOL * args.bs, N_CLASSES, generator=generator) < 0.05).float()
    targets = targets.to(device)
    bf16 = args.precision == "bf16"

    def step(i: int) -> None:
        rows = slice((i % POOL) * args.bs, (i % POOL + 1) * args.bs)
        x = images[rows].float().div_(255).sub_(MEAN).div_(STD).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_func(logits.float(), targets[rows])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(args.warmup):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    synchronize(device)
    return arm_figures(args, time.perf_counter() - start, device)  # the next arm frees it all


def step_timer(warmup: int, steps: int, device: torch.device) -> Any:
    """A fastai callback that times training batches ``warmup + 1 .. warmup + steps`` and
    then ends the fit (before the epoch's validation)."""
    from fastai.callback.core import Callback, CancelFitException

    class StepTimer(Callback):
        order = 1000  # after every other callback's after_batch

        def __init__(self) -> None:
            self.done, self.start, self.seconds = 0, 0.0, None

        def after_batch(self) -> None:
            if not self.training:
                return
            self.done += 1
            if self.done == warmup:
                synchronize(device)
                self.start = time.perf_counter()
            elif self.done == warmup + steps:
                synchronize(device)
                self.seconds = time.perf_counter() - self.start
                raise CancelFitException

    return StepTimer()


def cxrlt_arm(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The learner ``cxrlt run`` trains (``cxrlt.workflows.training.train_and_checkpoint``),
    timed by a callback."""
    from cxrlt.options import RunOptions
    from cxrlt.outputs.run_dir import CHECKPOINT, LOG
    from cxrlt.training import distributed
    from cxrlt.training.checkpoint import EpochCheckpoint
    from cxrlt.training.guards import StopOnNonFiniteLoss
    from cxrlt.training.learner import cxr_learner
    from cxrlt.training.run_log import RunLog
    from cxrlt.workflows.data import run_dataloaders
    from cxrlt.workflows.setup import seed_run
    from cxrlt.workflows.specs import check_options
    from cxrlt.workflows.training import step_callbacks

    options = RunOptions(
        dataset=dataset_spec(args),
        arch=args.arch,
        bs=args.bs,
        lr=args.lr,
        size=args.size,
        epochs=1,
        valid_frac=VALID_FRAC,
        pretrained=False,
        precision=args.precision,
        channels_last=args.channels_last,
        device=str(device),
    )
    specs = check_options(options)
    main = distributed.is_main_process()
    free(device)
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    seed_run(options.seed, device)  # as `cxrlt run`: cuDNN benchmark mode on a GPU
    dls = run_dataloaders(options, specs, device)
    timer = step_timer(args.warmup, args.steps, device)
    with tempfile.TemporaryDirectory(prefix="cxrlt-gpu-bench-") as folder:
        callbacks = [
            StopOnNonFiniteLoss(),
            EpochCheckpoint(Path(folder) / CHECKPOINT, write=main),
            *step_callbacks(options, device),
        ]
        if main:
            callbacks.append(RunLog(LOG))
        learn = cxr_learner(
            dls,
            specs.arch,
            specs.loss,
            head=specs.head,
            path=folder,
            cbs=[*callbacks, timer],
        )
        with distributed.distributed(learn, device):
            learn.fit_one_cycle(options.epochs, options.lr)
    if timer.seconds is None:
        raise RuntimeError(
            f"The epoch ended after {timer.done} batches, before {args.warmup + args.steps}: "
            "the data set is too small (see dataset_spec)."
        )
    figures = arm_figures(args, timer.seconds, device, distributed.world_size())
    figures["dataset"] = options.dataset
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    del learn, dls
    free(device)
    return figures


# ------------------------------------------------------------------------------------ results


def describe(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return {
        "dry_run": args.dry_run,
        "device": name,
        "arch": args.arch,
        "size": args.size,
        "bs": args.bs,
        "warmup": args.warmup,
        "steps": args.steps,
        "precision": args.precision,
        "channels_last": args.channels_last,
    }


def goals(figures: dict[str, Any]) -> list[Goal]:
    found = [Goal("cxrlt / plain images/s", ">=", THROUGHPUT_RATIO, figures["ratio"])]
    if figures.get("memory_ratio") is not None:
        found.append(Goal("cxrlt / plain peak memory", "<=", MEMORY_RATIO, figures["memory_ratio"]))
    ddp = figures.get("ddp")
    if ddp and ddp.get("scaling_efficiency") is not None:
        found.append(
            Goal(
                f"DDP scaling efficiency, {ddp['world_size']} GPUs",
                ">=",
                SCALING,
                ddp["scaling_efficiency"],
            )
        )
    return found


def gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(f: dict[str, Any]) -> str:
    precision = "bf16 autocast" if f["precision"] == "bf16" else "fp32"
    layout = "channels-last" if f["channels_last"] else "contiguous"
    lines = [
        *(
            ["DRY RUN on the CPU: checks the plumbing, the figures mean nothing.", ""]
            if f["dry_run"]
            else []
        ),
        f"Training throughput on {f['device']}: {f['arch']} at {f['size']} px, batch {f['bs']} "
        f"per GPU, {precision}, {layout}; {f['warmup']} warm-up + {f['steps']} timed steps",
        "",
        "| arm | images/s | ms/step | peak GPU memory, GiB | vs plain |",
        "|---|---|---|---|---|",
    ]
    for key, label in (("plain", "plain PyTorch loop"), ("cxrlt", "cxrlt learner (cxrlt run)")):
        arm = f.get(key)
        if arm:
            ratio = arm["images_per_s"] / f["plain"]["images_per_s"] if f.get("plain") else 1.0
            lines.append(
                f"| {label} | {arm['images_per_s']:.1f} | {arm['ms_per_step']:.1f} | "
                f"{gib(arm['peak_memory_gib'])} | {ratio:.3f} |"
            )
    ddp = f.get("ddp")
    lines.append("")
    if not ddp:
        lines.append("DDP: one GPU present, not run.")
    else:
        efficiency = ddp["scaling_efficiency"]
        lines += [
            f"DDP ({ddp['backend']}): the cxrlt arm on {ddp['world_size']} ranks, "
            f"batch {f['bs']} each",
            "",
            "| GPUs | images/s | per GPU | scaling efficiency | peak memory, GiB (max rank) |",
            "|---|---|---|---|---|",
            f"| {ddp['world_size']} | {ddp['images_per_s']:.1f} | "
            f"{ddp['images_per_s_per_gpu']:.1f} | "
            f"{'n/a' if efficiency is None else f'{efficiency:.3f}'} | "
            f"{gib(ddp['peak_memory_gib'])} |",
        ]
    return "\n".join(lines)


def single(args: argparse.Namespace) -> dict[str, Any]:
    device = pick(args)
    plain = plain_arm(args, device)
    ours = cxrlt_arm(args, device)
    memory = (
        round(ours["peak_memory_gib"] / plain["peak_memory_gib"], 4)
        if plain["peak_memory_gib"]
        else None
    )
    figures = {
        **describe(args, device),
        "plain": plain,
        "cxrlt": ours,
        "ratio": round(ours["images_per_s"] / plain["images_per_s"], 4),
        "memory_ratio": memory,
        "ddp": None,
    }
    return write_results(args.out, NAME, figures, table(figures), goals(figures))


def ddp(args: argparse.Namespace) -> dict[str, Any] | None:
    import torch.distributed as dist

    from cxrlt.training import distributed

    device = distributed.setup_device(pick(args))
    try:
        ours = cxrlt_arm(args, device)
        peaks: list[Any] = [None] * distributed.world_size()
        dist.all_gather_object(peaks, ours["peak_memory_gib"])
        if not distributed.is_main_process():
            return None
        world = distributed.world_size()
        previous = args.out / f"{NAME}.json"
        figures = describe(args, device)
        if previous.is_file():  # the one-GPU stage's figures
            record = json.loads(previous.read_text())
            figures |= {k: v for k, v in record.items() if k not in ("machine", "goals", "table")}
        one = (figures.get("cxrlt") or {}).get("images_per_s")
        known = [peak for peak in peaks if peak is not None]
        figures["ddp"] = {
            "world_size": world,
            "backend": str(dist.get_backend()),
            "seconds": ours["seconds"],
            "images_per_s": ours["images_per_s"],
            "images_per_s_per_gpu": round(ours["images_per_s"] / world, 2),
            "scaling_efficiency": round(ours["images_per_s"] / (world * one), 4) if one else None,
            "peak_memory_gib": max(known) if known else None,
            "peak_memory_gib_per_rank": peaks,
        }
        return write_results(args.out, NAME, figures, table(figures), goals(figures))
    finally:
        distributed.cleanup()


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    return ddp(args) if args.ddp else single(args)


if __name__ == "__main__":
    main()
