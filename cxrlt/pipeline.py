"""The flow of ``cxrlt run``: check every name, load data, train, evaluate, write the run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cxrlt import __version__
from cxrlt.errors import CxrltError
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec, parse_spec


@dataclass(frozen=True)
class RunOptions:
    """Everything ``cxrlt run`` takes; the defaults train on the embedded data in minutes."""

    dataset: str = "synthetic"
    data: str | None = None
    arch: str = "resnet18"
    head: str = "linear"
    loss: str = "bce"
    sampler: str = "uniform"
    epochs: int = 8
    bs: int = 64
    lr: float = 2e-3
    size: int = 64
    valid_frac: float = 0.2
    skip_bad: bool = False
    letterbox: bool = False
    augment: bool = False  # pays on long schedules with real data, costs short demo runs
    seed: int = 0
    pretrained: bool | None = None  # None: as the backbone spec says
    device: str = "auto"
    out: Path | None = None
    overwrite: bool = False


def check_specs(options: RunOptions) -> dict[str, Resolved]:
    """Resolve every name before any work starts, so a typo costs nothing."""
    arch = parse_spec(options.arch)
    if options.pretrained is not None:
        arch = Spec(arch.name, {**arch.params, "pretrained": options.pretrained})
    return {
        "dataset": resolve("datasets", options.dataset),
        "sampler": resolve("samplers", options.sampler),
        "arch": resolve("backbones", arch),
        "head": resolve("heads", options.head),
        "loss": resolve("losses", options.loss),
    }


def _check_numbers(options: RunOptions) -> None:
    for name in ("epochs", "bs", "size"):
        if getattr(options, name) < 1:
            raise CxrltError(f"--{name} must be at least 1, got {getattr(options, name)}.")
    if options.lr <= 0:
        raise CxrltError(f"--lr must be positive, got {options.lr}.")
    if not 0 < options.valid_frac < 1:
        raise CxrltError(f"--valid-frac must be between 0 and 1, got {options.valid_frac}.")


def pick_device(name: str) -> Any:
    """``auto`` means the first GPU when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CxrltError(
            f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CxrltError(f"--device {name} asks for a GPU, but torch sees none: use --device cpu.")
    return device


def default_out() -> Path:
    return Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run(options: RunOptions, console: Console | None = None) -> tuple[Any, Any]:
    """Train and evaluate as ``options`` say; returns the run directory and the metric report."""
    console = console or Console()
    _check_numbers(options)
    specs = check_specs(options)
    device = pick_device(options.device)

    import torch
    from fastai.callback.progress import CSVLogger
    from fastai.torch_core import set_seed

    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.evaluation.metrics import evaluate
    from cxrlt.outputs.report import print_data_summary, print_report
    from cxrlt.outputs.run_dir import LOG, RunDir
    from cxrlt.training.learner import cxr_learner

    run_dir = RunDir(options.out or default_out(), overwrite=options.overwrite)
    set_seed(options.seed, reproducible=True)
    dls = cxr_dataloaders(
        str(specs["dataset"].spec),
        path=options.data,
        size=options.size,
        bs=options.bs,
        sampler=str(specs["sampler"].spec),
        valid_frac=options.valid_frac,
        seed=options.seed,
        device=device,
        skip_bad=options.skip_bad,
        letterbox=options.letterbox,
        augment=options.augment,
    )
    print_data_summary(console, dls)
    run_dir.write_table("split.csv", dls.split_table())
    if len(dls.skipped):
        run_dir.write_table("skipped.csv", dls.skipped)
    learn = cxr_learner(
        dls,
        str(specs["arch"].spec),
        str(specs["loss"].spec),
        head=str(specs["head"].spec),
        path=run_dir.path,
        cbs=[CSVLogger(fname=LOG)],
    )
    learn.fit_one_cycle(options.epochs, options.lr)

    logits, targets = learn.get_preds(ds_idx=1, act=lambda x: x)
    with torch.no_grad():
        probs = learn.loss_func.activation(logits)
    report = evaluate(probs.numpy(), targets.numpy(), dls.classes)

    valid_ids = dls.data.frame["ImageID"][dls.is_valid].tolist()
    run_dir.write_predictions(valid_ids, dls.classes, logits.numpy(), probs.numpy())
    run_dir.write_weights(learn.model)
    run_dir.write_metrics(report)
    run_dir.write_config(_config(options, learn.specs, dls, device))
    print_report(console, report, dls.class_counts)
    console.print(f"Run written to [bold]{run_dir.path}[/bold]")
    return run_dir, report


def _config(options: RunOptions, specs: dict[str, Resolved], dls: Any, device: Any) -> dict:
    import torch

    return {
        "cxrlt_version": __version__,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(options).items()
        },
        "specs": {role: resolved.to_dict() for role, resolved in specs.items()},
        "data": {
            "n_train": dls.n_train,
            "n_valid": int(dls.is_valid.sum()),
            "classes": list(dls.classes),
            "train_counts": dls.class_counts.tolist(),
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(device),
        },
    }
