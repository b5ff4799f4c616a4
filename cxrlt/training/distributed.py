"""Distributed data-parallel training through fastai's ``DistributedTrainer``.

Launch with ``torchrun --nproc_per_node N -m cxrlt run ...`` or ``accelerate launch``: every
rank runs the same program, builds the same data loaders (the training order comes from
``(seed, epoch)``, so it is the same everywhere) and trains one replica of the model; DDP
averages the gradients, fastai's ``DistributedDL`` gives each rank its slice of every epoch and
gathers the validation predictions, so every rank records the metrics of the whole validation
set. GPUs talk over NCCL, CPUs (tests, CPU clusters) over gloo. Across machines (``torchrun
--nnodes M --rdzv_backend c10d ...``) the global rank decides which one process writes and
prints (:func:`is_main_process`); the local rank only picks a GPU on its machine.

fastai's own ``distrib_ctx`` assumes GPUs; on CPU it fails in two places, fixed here by
subclasses rather than by patching fastai:

- ``Accelerator()`` on a machine without a GPU picks ``DistributedType.NO`` under torchrun
  (it only chooses multi-CPU when told ``cpu=True``), so ``prepare`` returns the bare model:
  nothing is wrapped in DDP, the gradients are never averaged, and the trainer then fails on
  ``model.device`` (a plain ``nn.Module`` has none). :class:`DDPTrainer` passes ``cpu=True``
  when the device is the CPU.
- ``DistributedDL._broadcast`` sends the epoch's indices as ``LongTensor(t).cuda()``, which
  needs CUDA; :class:`ProcessGroupDL` sends them on the device the process group's backend
  talks on (CPU for gloo, the current GPU for NCCL).

:class:`ProcessGroupDL` also deals the epoch out so that gathered predictions come back in the
loader's order (fastai's interleave them batch by batch), and :func:`rank_local` lets one rank
predict alone after training, which fastai would otherwise turn into a collective that hangs.

SyncBatchNorm only runs on GPUs, so BatchNorm is converted only on CUDA (and put back after).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from fastai.callback.progress import ProgressCallback
from fastai.distributed import DistributedDL, DistributedTrainer
from fastai.learner import Learner
from fastai.torch_core import apply, to_detach
from torch import nn
from torch.nn import SyncBatchNorm as SyncBN
from torch.nn.modules.batchnorm import _BatchNorm

from cxrlt.errors import CxrltError

_created_group = False  # whether setup_device initialised the process group (cleanup ends it)

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def _group_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of ranks: from the process group once it exists, else from the launcher's env."""
    if _group_ready():
        return dist.get_world_size()
    return max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    """This process's global rank (0 in a single process)."""
    if _group_ready():
        return dist.get_rank()
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine: which GPU it takes."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """Global rank 0: the one process of the whole job (not one per machine) that writes run
    directories, logs and checkpoints."""
    return rank() == 0


def _comm_device() -> torch.device:
    """The device whose tensors the default group's backend sends (NCCL: GPU only)."""
    if "nccl" in str(dist.get_backend()).lower():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def setup_device(device: torch.device | str) -> torch.device:
    """Join the process group (once) and return the device this rank must train on.

    Under a launcher (WORLD_SIZE > 1) a CUDA rank takes ``cuda:LOCAL_RANK`` (modulo the GPUs
    it can see, like accelerate) whatever index was asked for, and the group uses NCCL; a CPU
    rank uses gloo. A group someone else already initialised (accelerate, the caller) is kept.
    In a single process ``device`` comes back unchanged.
    """
    global _created_group
    device = torch.device(device)
    if world_size() <= 1:
        return device
    if not dist.is_available():
        raise CxrltError("This PyTorch build has no torch.distributed: run a single process.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CxrltError("A CUDA device was asked for, but this rank sees no GPU.")
        device = torch.device("cuda", local_rank() % torch.cuda.device_count())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise CxrltError(
            f"Distributed training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type!r}."
        )
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
        _created_group = True
    global _finish_group
    _finish_group = dist.new_group(backend="gloo", timeout=FINISH_TIMEOUT)
    return device


FINISH_TIMEOUT = datetime.timedelta(days=1)  # rank 0 may evaluate and write for a long time
_finish_group: Any = None


def wait_for_every_rank_to_finish() -> None:
    """The last meeting of a run: ranks that are done wait here for the first to write the
    run. Its own gloo group has a day's timeout, where NCCL's default would abort after ten
    minutes; a rank that exits without waiting can tear the group down under the others."""
    if world_size() <= 1 or _finish_group is None:
        return
    dist.barrier(group=_finish_group)


def barrier() -> None:
    """Wait for every rank (e.g. while rank 0 writes a file the others read); no-op alone."""
    if world_size() <= 1 or not _group_ready():
        return
    if _comm_device().type == "cuda":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if :func:`setup_device` created it (a launcher's is kept)."""
    global _created_group
    if _created_group and _group_ready():
        dist.destroy_process_group()
    _created_group = False


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (e.g. a run folder named by the clock); as is alone."""
    if world_size() <= 1 or not _group_ready():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0, device=_comm_device())
    return holder[0]


def broadcast_weights(model: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank, in place (weights that rank 0 read from
    its own files, which other nodes may not see); a no-op alone."""
    if world_size() <= 1 or not _group_ready():
        return
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank; a collective, so every rank must ask together."""
    if world_size() <= 1 or not _group_ready():
        return flag
    value = torch.tensor([float(flag)], device=_comm_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_checksums(model: nn.Module, *, buffers: bool = False) -> list[float]:
    """Every rank's float64 sum of the model's parameters (and buffers if asked), in rank order.

    Equal values on all ranks mean the replicas hold the same weights. Every rank must call
    it (it is a collective); a single process gets its one value.
    """
    tensors = list(model.parameters()) + (list(model.buffers()) if buffers else [])
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for tensor in tensors:
            total += tensor.detach().double().sum().cpu()
    if world_size() <= 1 or not _group_ready():
        return [float(total)]
    local = total.reshape(1).to(_comm_device())
    gathered = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(gathered, local)
    return [float(value.item()) for value in gathered]


class ProcessGroupDL(DistributedDL):
    """fastai's ``DistributedDL`` that works over gloo and keeps gathered outputs in order.

    fastai's version broadcasts the epoch's indices as CUDA tensors (gloo on the CPU cannot)
    and gives rank ``r`` the ``r``-th contiguous slice of the epoch, so the predictions it
    gathers come back interleaved batch by batch: right for metrics (predictions and targets
    move together), wrong for anything written row by row. Here global batch ``k`` (``bs``
    items per rank) is split across the ranks, so gathering batch ``k`` rebuilds it in the
    loader's order and ``get_preds`` lines up with the data set. Each rank still gets an
    equal share; the padding (fewer than ``world_size`` repeated items) sits at the very end.
    """

    def _broadcast(self, t: list[int], rank: int) -> list[int]:
        tensor = torch.tensor(t, dtype=torch.long, device=_comm_device())
        dist.broadcast(tensor, rank)
        return tensor.cpu().tolist()

    def get_idxs(self) -> list[int]:
        idxs = self._broadcast(list(self.dl.get_idxs()), 0)  # rank 0's order for everyone
        self.n = len(idxs)
        self.n_padded = -(-self.n // self.world_size) * self.world_size
        if self.n:
            idxs += (idxs * (self.n_padded // self.n))[: self.n_padded - self.n]
        block = (self.bs or self.n_padded or 1) * self.world_size
        mine: list[int] = []
        for start in range(0, self.n_padded, block):
            share = min(block, self.n_padded - start) // self.world_size
            first = start + self.rank * share
            mine += idxs[first : first + share]
        return mine

    def to_detach(self, b: Any, cpu: bool = True, gather: bool = True) -> Any:
        b = self._to_detach(b, cpu, gather)
        if not (gather and hasattr(self, "n_padded") and hasattr(self, "i")):
            return b
        extra = max(0, self.world_size * self.i - self.n)  # padding in this gathered batch

        def unpad(t: Any) -> Any:
            return t[: len(t) - extra] if extra and isinstance(t, torch.Tensor) and t.ndim else t

        return apply(unpad, b)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


class DDPTrainer(DistributedTrainer):
    """fastai's ``DistributedTrainer`` made to work on the CPU as well as on GPUs.

    It tells accelerate to use the CPU when ``device`` is the CPU (else accelerate wraps
    nothing), wraps loaders in :class:`ProcessGroupDL` and gives them ``device`` instead of
    reading ``model.device``. With ``sync_bn`` it converts BatchNorm through timm's converter,
    which also keeps the activation of timm's fused ``BatchNormAct2d`` (torch's drops it), and
    puts the original layers back after the fit: they share the trained tensors.
    """

    def __init__(self, device: torch.device, sync_bn: bool, **accelerator_kwargs: Any) -> None:
        accelerator_kwargs.setdefault("cpu", device.type == "cpu")
        # fastai's own callbacks do mixed precision; accelerate's (from `accelerate launch
        # --mixed_precision` or its config) would scale gradients nothing unscales.
        accelerator_kwargs.setdefault("mixed_precision", "no")
        super().__init__(sync_bn=False, **accelerator_kwargs)
        self.ddp_device, self.convert_bn = device, sync_bn
        self.old_dls: list | None = None
        self.plain_bn: dict[str, nn.Module] = {}

    def before_fit(self) -> None:
        if self.convert_bn:
            from timm.layers import convert_sync_batchnorm

            self.plain_bn = {
                name: module
                for name, module in self.learn.model.named_modules()
                if name and isinstance(module, _BatchNorm) and not isinstance(module, SyncBN)
            }
            self.learn.model = convert_sync_batchnorm(self.learn.model)
        super().before_fit()

    def _wrap_dl(self, dl: Any) -> DistributedDL:
        if isinstance(dl, DistributedDL):
            return dl
        return ProcessGroupDL(dl, device=self.ddp_device)

    def restore(self) -> None:
        """Unwrap model and loaders, put BatchNorm back; safe twice and after a failed fit."""
        if isinstance(self.learn.model, nn.parallel.DistributedDataParallel):
            self.learn.model = self.learn.model.module
        for name, module in self.plain_bn.items():
            _set_submodule(self.learn.model, name, module)
        self.plain_bn = {}
        if self.old_dls is not None:
            self.learn.dls.loaders, self.old_dls = self.old_dls, None

    def after_fit(self) -> None:
        self.restore()


def _local_to_detach(b: Any, cpu: bool = True, gather: bool = True) -> Any:
    return to_detach(b, cpu=cpu, gather=False)


@contextmanager
def rank_local(learn: Learner) -> Iterator[Learner]:
    """Let this rank ``validate`` or ``get_preds`` on its own, e.g. rank 0 after training.

    Under a launcher fastai gathers every prediction from all ranks even outside
    :func:`distributed` (it reads WORLD_SIZE), so a ``get_preds`` that rank 0 alone runs would
    wait for the others forever. In this block nothing is gathered: this rank's data only.
    A no-op in a single process.
    """
    if world_size() <= 1:
        yield learn
        return
    own = learn.__dict__.get("to_detach")
    learn.to_detach = _local_to_detach
    try:
        yield learn
    finally:
        if own is None:
            del learn.to_detach
        else:
            learn.to_detach = own


@contextmanager
def distributed(
    learn: Learner, device: torch.device | str, **accelerator_kwargs: Any
) -> Iterator[Learner]:
    """Train ``learn`` with DDP inside the block when launched on several ranks; else nothing.

    Every rank must run the same ``fit`` calls. ``accelerator_kwargs`` go to accelerate's
    ``Accelerator`` (e.g. ``kwargs_handlers=[DistributedDataParallelKwargs(...)]`` for a model
    with parameters some batches leave unused). Rank > 0 trains silently (no progress bar, no
    printed table); metrics are computed over the whole validation set on every rank, and
    ``get_preds`` in the block returns every rank the whole set, in the loader's order. The
    learner is put back as it was on exit (plain model and loaders, BatchNorm, callbacks).
    """
    if world_size() <= 1:
        yield learn
        return
    own = setup_device(device)
    built = torch.device(getattr(learn.dls, "device", None) or device)
    if built.type != own.type or (own.type == "cuda" and built.index not in (None, own.index)):
        raise CxrltError(
            f"This rank trains on {own}, but its data loaders use {built}: "
            "build them on the device setup_device returns."
        )
    trainer = DDPTrainer(own, sync_bn=own.type == "cuda", **accelerator_kwargs)
    logger = learn.logger
    progress = [cb for cb in learn.cbs if isinstance(cb, ProgressCallback)] if rank() else []
    learn.remove_cbs(progress)
    learn.add_cb(trainer)
    try:
        yield learn
    finally:
        trainer.restore()
        learn.remove_cb(trainer)
        learn.add_cbs(progress)
        learn.logger = logger
