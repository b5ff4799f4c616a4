"""The set-up stage of a run: options checked, device picked, run folder checked, specs
resolved and rehearsed; which process writes the run is decided here, once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from cxrlt.errors import CxrltError
from cxrlt.workflows.preflight import check_numbers, check_paths
from cxrlt.workflows.specs import RunSpecs, rehearsed_specs
from cxrlt.workflows.write import RunWriter

if TYPE_CHECKING:
    from cxrlt.options import RunOptions


@dataclass(frozen=True)
class Setup:
    """What every later stage shares. On ranks other than the first the writer writes nothing
    and the console prints nothing, so the stages need not know their rank."""

    specs: RunSpecs
    device: Any  # torch.device
    writer: RunWriter
    console: Console


def set_up(options: RunOptions, console: Console, *, resume: bool) -> Setup:
    """Every check that needs no data, on every rank (one that stopped alone would hang)."""
    from cxrlt.outputs.run_dir import RunDir
    from cxrlt.training import distributed

    check_numbers(options)
    device = distributed.setup_device(pick_device(options.device))
    out = Path(distributed.broadcast_from_main(options.out or default_out()))
    check_paths(options, out, resume=resume)
    distributed.barrier()  # every rank has checked --out before the first one writes there
    specs = rehearsed_specs(options)
    main = distributed.is_main_process()
    writer = RunWriter(RunDir(out, check=False), active=main)  # checked: check_paths
    return Setup(specs, device, writer, console if main else Console(quiet=True))


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


def seed_run(seed: int, device: Any) -> None:
    """Seed every generator. On the CPU runs are then bit-reproducible; on a GPU cuDNN picks
    its fastest kernels (benchmark mode) instead of deterministic ones, which costs
    throughput on every convolution of a long run."""
    import torch
    from fastai.torch_core import set_seed

    set_seed(seed, reproducible=True)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
