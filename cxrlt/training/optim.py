"""fastai's Adam, stepped by torch's fused AdamW kernel.

fastai's ``Adam`` runs five Python-level tensor operations per parameter and step (decay,
two moving averages, a debiased square root and the update), each a pass over the weights
and two of them allocating: on a CPU the step of a ResNet-18 costs as much as torch's
single-tensor ``AdamW``, and about five times its fused kernel. :class:`FusedAdam` keeps
everything else of fastai's optimiser: its hyper-parameters (``lr``, ``mom``, ``sqr_mom``,
``eps``, ``wd``, set per group by the one-cycle schedule), its per-parameter state (no weight
decay on normalisation and bias parameters, ``do_wd``; frozen groups), its state dict, and
its update: decoupled weight decay, dampened averages, debiasing by the current momentum.
Its state keys are fastai's, so a checkpoint of either resumes with the other.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from fastai.optimizer import Optimizer
from torch.optim.adamw import adamw

# Devices whose fused AdamW kernel torch has (the others take its multi-tensor one).
FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


class FusedAdam(Optimizer):
    """fastai's ``Adam`` (decoupled weight decay) updating each group's parameters at once."""

    def __init__(
        self,
        params: Any,
        lr: float | slice = 1e-3,
        mom: float = 0.9,
        sqr_mom: float = 0.99,
        eps: float = 1e-5,
        wd: float = 0.01,
    ) -> None:
        super().__init__(params, [], lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)

    def zero_grad(self) -> None:
        """Zero the gradients in place, as fastai does (a parameter left out of a batch's
        graph keeps a zero gradient, so it still steps)."""
        grads = [p.grad for p, *_ in self.all_params(with_grad=True)]
        for grad in grads:
            grad.detach_()
        if grads:
            torch._foreach_zero_(grads)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        if closure is not None:
            raise NotImplementedError("fastai optimizers currently do not support closure")
        buckets: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for index, (group, hyper) in enumerate(zip(self.param_lists, self.hypers, strict=True)):
            for p in group:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "grad_avg" not in state:
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["sqr_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                step = state.get("step", 0)
                if not isinstance(step, torch.Tensor):  # fastai's Adam counts in an int
                    state["step"] = torch.tensor(float(step), device=p.device)
                decay = state.get("do_wd", True) and hyper["wd"] != 0
                bucket = buckets[index, decay, p.device.type]
                bucket["params"].append(p)
                bucket["grads"].append(p.grad)
                bucket["exp_avgs"].append(state["grad_avg"])
                bucket["exp_avg_sqs"].append(state["sqr_avg"])
                bucket["state_steps"].append(state["step"])
        for (index, decay, device), tensors in buckets.items():
            hyper = self.hypers[index]
            fused = device in FUSED_DEVICES
            adamw(
                **tensors,
                max_exp_avg_sqs=[],
                fused=fused,
                foreach=None if fused else True,
                amsgrad=False,
                beta1=hyper["mom"],
                beta2=hyper["sqr_mom"],
                lr=hyper["lr"],
                weight_decay=hyper["wd"] if decay else 0.0,
                eps=hyper["eps"],
                maximize=False,
            )


def fused_adam(params: Any, lr: float | slice = 1e-3, **kwargs: Any) -> FusedAdam:
    """The ``opt_func`` of cxrlt's learners (fastai's ``Adam`` defaults)."""
    return FusedAdam(params, lr=lr, **kwargs)
