"""GPU training throughput: cxrlt's learner against a plain PyTorch loop, then DDP.

Two arms in one process, on the same GPU, the same backbone (timm, no pretrained weights),
image size, batch and precision; each runs ``--warmup`` steps, then ``--steps`` timed steps
between two ``torch.cuda.synchronize``, then ``--sync-steps`` steps in which torch's CUDA
sync debug mode counts the host synchronisations (it warns at each; the count is divided by
the steps: host syncs per batch). Peak GPU memory is ``torch.cuda.max_memory_allocated``,
reset before each arm (whose model, optimiser and data are freed before the next):

- ``plain``: a hand-written loop, as fast as plain PyTorch goes: the timm model
  (``in_chans=1``, 30 outputs), torch's AdamW with its fused kernel (the fastest it has on a
  GPU; cxrlt steps with the same kernel) and fastai's Adam hyper-parameters, BCE-with-logits,
  bf16 autocast, channels-last, cuDNN in benchmark mode (as cxrlt runs), random uint8 batches
  already on the GPU (made float and normalised on it, as cxrlt's model does);
- ``cxrlt``: the learner as ``cxrlt run`` builds it
  (``cxrlt.workflows.training.train_and_checkpoint``): the cached
  uint8 loader over the embedded synthetic data set (drawn at ``--draw-size``, resized into
  the cache at ``--size``), ``cxr_learner`` with the default head and loss, the callbacks a
  default run adds (non-finite loss guard, epoch checkpoint, run log, ``--precision`` and
  ``--channels-last`` through ``step_callbacks``), ``fit_one_cycle`` inside
  ``distributed(...)``, and the seeding ``cxrlt run`` does (``seed_run``: cuDNN in benchmark
  mode on a GPU). Timing stops before the epoch ends, so no
  validation is timed.

Beside them, the data path: cxrlt's train loader alone, iterated as ``fit`` draws it in a run
with ``--augment`` (uint8 batches indexed from the cache at ``--size``, moved to the GPU, made
float and augmented there), in images/s against the cxrlt arm's training images/s: the
loader keeps up when it is at least 1.5 times as fast.

With ``--ddp`` (under ``torchrun``; ``bench/gpu.sh`` launches it when it finds several GPUs)
every rank runs the cxrlt arm data-parallel, and rank 0 adds the multi-GPU images/s and the
scaling efficiency against the one-GPU cxrlt arm to the ``gpu.json`` in ``--out``.

``--dry-run`` runs the same code on the CPU with a tiny model (resnet18, 32 px, batch 8,
1 + 2 + 1 steps, fp32: fastai's mixed precision is CUDA autocast), to check the plumbing; its
figures mean nothing, and neither GPU memory nor host synchronisations exist there (None).
Run everything through ``bash bench/gpu.sh`` (see there).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from harness import RESULTS, Goal, write_results

NAME = "gpu"
N_CLASSES = 30  # the embedded data set's (CXR-LT 2026's) classes
VALID_FRAC = 0.1  # the validation split is built, never timed
POOL = 4  # batches of random images the plain arm cycles through
MEAN, STD = 0.449, 0.226  # greyscale normalisation, as CXRClassifier does
SYNC_WARNING = "called a synchronizing CUDA operation"  # what torch's sync debug mode says
# Goals: cxrlt's per-step extras (callbacks, loader, metrics) cost at most 3% of a plain loop's
# images/s; memory within 10% (both hold the same model, gradients and Adam state); DDP on one
# machine loses at most 15% to gradient all-reduce; the loader with on-device augmentation
# runs at least 1.5 times as fast as training, so training never waits for it.
THROUGHPUT_RATIO, MEMORY_RATIO, SCALING, LOADER_RATIO = 0.97, 1.1, 0.85, 1.5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="convnext_large", help="timm backbone")
    parser.add_argument("--size", type=int, default=512, help="image side, pixels")
    parser.add_argument("--bs", type=int, default=32, help="images per step (per GPU in DDP)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument(
        "--sync-steps", type=int, default=5, help="steps after the timed ones counting host syncs"
    )
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
        args.precision, args.draw_size, args.sync_steps = "32", 32, 1
    if min(args.warmup, args.steps, args.sync_steps, args.bs, args.gpus) < 1:
        parser.error("--warmup, --steps, --sync-steps, --bs and --gpus must be at least 1")
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


class SyncCounter:
    """Counts host synchronisations between :meth:`start` and :meth:`stop`: torch's CUDA sync
    debug mode warns at each (``.item()``, a copy to or from pageable host memory, ...).
    ``count`` stays None off CUDA, where the host never waits for a device."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.count = device, None
        self._catcher: Any = None
        self._caught: list = []

    def start(self) -> None:
        if self.device.type != "cuda":
            return
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")  # every occurrence, not the first from each line
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if self._catcher is None:
            return
        torch.cuda.set_sync_debug_mode("default")
        self._catcher.__exit__(None, None, None)
        self._catcher = None
        self.count = sum(SYNC_WARNING in str(warning.message) for warning in self._caught)


def arm_figures(
    args: argparse.Namespace,
    seconds: float,
    device: torch.device,
    syncs: int | None,
    world: int = 1,
) -> dict[str, Any]:
    images = world * args.bs * args.steps
    return {
        "seconds": round(seconds, 6),
        "ms_per_step": round(1000 * seconds / args.steps, 2),
        "images_per_s": round(images / seconds, 2),
        "peak_memory_gib": peak_gib(device),
        "host_syncs_per_batch": None if syncs is None else round(syncs / args.sync_steps, 2),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


def dataset_spec(args: argparse.Namespace) -> str:
    """The embedded synthetic set, large enough that every rank of the DDP stage gets
    ``warmup + steps + sync_steps`` full training batches in one epoch."""
    train = args.bs * (args.warmup + args.steps + args.sync_steps + 1) * args.gpus
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
    """A hand-written training loop: timm model, fused AdamW, BCE, autocast, channels-last."""
    import timm

    from cxrlt.training.optim import FUSED_DEVICES

    free(device)
    torch.manual_seed(0)
    cudnn = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"  # its fastest kernels, as cxrlt's
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = timm.create_model(args.arch, pretrained=False, in_chans=1, num_classes=N_CLASSES)
    model = model.to(device, memory_format=fmt).train()
    fused = device.type in FUSED_DEVICES  # the kernel cxrlt's optimiser runs there
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=args.lr,
        betas=(0.9, 0.99),  # fastai's Adam defaults, which cxrlt trains with
        eps=1e-5,
        weight_decay=0.01,
        fused=fused,
        foreach=None if fused else True,
    )
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
    timed = args.warmup + args.steps
    for i in range(args.warmup, timed):
        step(i)
    synchronize(device)
    seconds = time.perf_counter() - start
    syncs = SyncCounter(device)
    syncs.start()
    for i in range(timed, timed + args.sync_steps):
        step(i)
    syncs.stop()
    figures = arm_figures(args, seconds, device, syncs.count)
    figures["optimizer"] = "AdamW, fused kernel" if fused else "AdamW, foreach kernel"
    torch.backends.cudnn.benchmark = cudnn
    return figures  # the next arm frees it all


def step_timer(args: argparse.Namespace, device: torch.device) -> Any:
    """A fastai callback that times training batches ``warmup + 1 .. warmup + steps``, counts
    the host syncs of the ``sync_steps`` batches after them, then ends the fit (before the
    epoch's validation)."""
    from fastai.callback.core import Callback, CancelFitException

    timed = args.warmup + args.steps

    class StepTimer(Callback):
        order = 1000  # after every other callback's after_batch: whole batches are counted

        def __init__(self) -> None:
            self.done, self.start, self.seconds = 0, 0.0, None
            self.syncs = SyncCounter(device)

        def after_batch(self) -> None:
            if not self.training:
                return
            self.done += 1
            if self.done == args.warmup:
                synchronize(device)
                self.start = time.perf_counter()
            elif self.done == timed:
                synchronize(device)
                self.seconds = time.perf_counter() - self.start
                self.syncs.start()
            elif self.done == timed + args.sync_steps:
                self.syncs.stop()
                raise CancelFitException

        def after_fit(self) -> None:
            self.syncs.stop()  # leaves the debug mode off, however the fit ended

    return StepTimer()


def run_options(args: argparse.Namespace, device: torch.device, augment: bool = False) -> Any:
    """The options of the ``cxrlt run`` the cxrlt arm (a default run: no augmentation) and
    the loader (with ``--augment``) stand for."""
    from cxrlt.options import RunOptions

    return RunOptions(
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
        augment=augment,
        device=str(device),
    )


def cxrlt_arm(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The learner ``cxrlt run`` trains (``cxrlt.workflows.training.train_and_checkpoint``),
    timed by a callback."""
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

    options = run_options(args, device)
    specs = check_options(options)
    main = distributed.is_main_process()
    free(device)
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    seed_run(options.seed, device)  # as `cxrlt run`: cuDNN benchmark mode on a GPU
    dls = run_dataloaders(options, specs, device)
    timer = step_timer(args, device)
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
    if timer.done < args.warmup + args.steps + args.sync_steps:
        raise RuntimeError(
            f"The epoch ended after {timer.done} batches, before "
            f"{args.warmup + args.steps + args.sync_steps}: the data set is too small "
            "(see dataset_spec)."
        )
    figures = arm_figures(args, timer.seconds, device, timer.syncs.count, distributed.world_size())
    figures["dataset"] = options.dataset
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    del learn, dls
    free(device)
    return figures


def loader_arm(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """cxrlt's train loader alone, as ``fit`` draws it with ``--augment``: uint8 batches from
    the cache, moved to the device, made float and augmented there; ``warmup`` batches, then
    ``steps`` timed."""
    from cxrlt.workflows.data import run_dataloaders
    from cxrlt.workflows.specs import check_options

    options = run_options(args, device, augment=True)
    train = run_dataloaders(options, check_options(options), device).train
    batches = iter(train)
    for _ in range(args.warmup):
        next(batches)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        next(batches)
    synchronize(device)
    seconds = time.perf_counter() - start
    batches.close()
    figures = {
        "seconds": round(seconds, 6),
        "images_per_s": round(args.bs * args.steps / seconds, 2),
        "augment": train.augment is not None,
        "workers": train.fake_l.num_workers,
    }
    del train, batches
    free(device)
    return figures


# ------------------------------------------------------------------------------------ results


def describe(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return {
        "date": datetime.date.today().isoformat(),
        "dry_run": args.dry_run,
        "device": name,
        "arch": args.arch,
        "size": args.size,
        "bs": args.bs,
        "warmup": args.warmup,
        "steps": args.steps,
        "sync_steps": args.sync_steps,
        "precision": args.precision,
        "channels_last": args.channels_last,
    }


def goals(figures: dict[str, Any]) -> list[Goal]:
    found = [Goal("cxrlt / plain images/s", ">=", THROUGHPUT_RATIO, figures["ratio"])]
    if figures.get("memory_ratio") is not None:
        found.append(Goal("cxrlt / plain peak memory", "<=", MEMORY_RATIO, figures["memory_ratio"]))
    if figures.get("loader_ratio") is not None:
        found.append(
            Goal("loader / training images/s", ">=", LOADER_RATIO, figures["loader_ratio"])
        )
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


def syncs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


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
        f"per GPU, {precision}, {layout}; {f['warmup']} warm-up + {f['steps']} timed steps "
        f"(+ {f['sync_steps']} counting host syncs); {f['date']}",
        "",
        "| arm | images/s | ms/step | peak GPU memory, GiB | host syncs per batch | vs plain |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("plain", "plain PyTorch loop"), ("cxrlt", "cxrlt learner (cxrlt run)")):
        arm = f.get(key)
        if arm:
            ratio = arm["images_per_s"] / f["plain"]["images_per_s"] if f.get("plain") else 1.0
            lines.append(
                f"| {label} | {arm['images_per_s']:.1f} | {arm['ms_per_step']:.1f} | "
                f"{gib(arm['peak_memory_gib'])} | {syncs(arm['host_syncs_per_batch'])} | "
                f"{ratio:.3f} |"
            )
    loader = f.get("loader")
    if loader:
        augmented = "with on-device augmentation" if loader["augment"] else "no augmentation"
        lines += [
            "",
            f"Data path: the cxrlt train loader alone ({loader['workers']} workers, "
            f"{augmented}) gives {loader['images_per_s']:.1f} images/s, "
            f"{f['loader_ratio']:.2f} times the cxrlt arm's training images/s.",
        ]
    if f.get("plain"):
        lines += ["", f"Plain loop's optimiser: torch's {f['plain']['optimizer']}."]
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
            "| GPUs | images/s | per GPU | scaling efficiency | peak memory, GiB (max rank) "
            "| host syncs per batch (rank 0) |",
            "|---|---|---|---|---|---|",
            f"| {ddp['world_size']} | {ddp['images_per_s']:.1f} | "
            f"{ddp['images_per_s_per_gpu']:.1f} | "
            f"{'n/a' if efficiency is None else f'{efficiency:.3f}'} | "
            f"{gib(ddp['peak_memory_gib'])} | {syncs(ddp['host_syncs_per_batch'])} |",
        ]
    return "\n".join(lines)


def single(args: argparse.Namespace) -> dict[str, Any]:
    device = pick(args)
    plain = plain_arm(args, device)
    ours = cxrlt_arm(args, device)
    loader = loader_arm(args, device)
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
        "loader": loader,
        "loader_ratio": round(loader["images_per_s"] / ours["images_per_s"], 4),
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
            "host_syncs_per_batch": ours["host_syncs_per_batch"],  # rank 0's
        }
        return write_results(args.out, NAME, figures, table(figures), goals(figures))
    finally:
        distributed.cleanup()


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    return ddp(args) if args.ddp else single(args)


if __name__ == "__main__":
    main()
