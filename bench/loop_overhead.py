"""Training-loop overhead: cxrlt's Learner against a minimal hand-written PyTorch loop.

Three arms train one epoch (then predict the validation split) on the same model, initial
weights, batches (the same cached uint8 images, in the same order), batch size, one-cycle
schedule and thread count:

1. plain: a hand-written loop (``model.train()``, forward, BCE with logits, backward,
   ``torch.optim.AdamW`` step under a one-cycle schedule, ``zero_grad``; then the validation
   logits under ``torch.no_grad``). Its AdamW runs the fastest kernel torch offers on the
   device: the fused and the multi-tensor (foreach) kernels each step once at the start and
   the faster is kept (cxrlt steps with the fused kernel, so a slower baseline would flatter it);
2. fastai: a plain fastai ``Learner`` with its default callbacks and its own ``Adam``;
3. cxrlt: the learner as ``cxrlt run`` builds and fits it
   (``cxrlt.workflows.training.train_and_checkpoint``:
   the callbacks a default run uses, checkpoints, the run log, the mAP metric and the progress bar).

The epoch is the default run's (the embedded data set: about 1,600 training images), so
what a run pays once an epoch (validation, the mAP, the checkpoint) weighs as it does there.
Arms run interleaved (a round runs each once, in a rotating order) and each figure is the
fastest round: the one least disturbed by other work. The goal is cxrlt against the plain
loop; cxrlt against plain fastai is reported beside it. Also: each arm's optimiser step
alone, and the data path: the train loader's time per batch (in-process, as the training
loop consumes it, uint8 to float included) against the model's step time (forward,
backward and cxrlt's optimiser step) on a batch already in memory.

    python bench/loop_overhead.py             # resnet18, 128 px, batch 64 (a few minutes)
    python bench/loop_overhead.py --quick     # tiny: seconds (a smoke check, not figures)
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import RESULTS, Goal, best_time, write_results
from torch import nn

from cxrlt.evaluation.metrics import macro_average_precision
from cxrlt.model.build import build_model
from cxrlt.options import RunOptions
from cxrlt.outputs.run_dir import RunDir
from cxrlt.training.learner import cxr_learner
from cxrlt.workflows.data import RunData, run_dataloaders, split_halves
from cxrlt.workflows.specs import check_options
from cxrlt.workflows.training import train_and_checkpoint

ARMS = ("plain", "fastai", "cxrlt")
KERNELS = ("fused", "foreach")  # torch's AdamW kernels the plain arm chooses between
PCT_START, DIV, FINAL_DIV, MOMS = 0.25, 25.0, 1e5, (0.95, 0.85)  # fastai's fit_one_cycle
BETA2, EPS, WD = 0.99, 1e-5, 0.01  # fastai's Adam defaults, so every arm takes the same steps


def _cos(start: float, end: float, pos: float) -> float:
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def one_cycle(pct: float, lr: float) -> tuple[float, float]:
    """Learning rate and momentum at ``pct`` of training, as fastai's ``fit_one_cycle``."""
    if pct < PCT_START:
        pos = pct / PCT_START
        return _cos(lr / DIV, lr, pos), _cos(MOMS[0], MOMS[1], pos)
    pos = (pct - PCT_START) / (1 - PCT_START)
    return _cos(lr, lr / FINAL_DIV, pos), _cos(MOMS[1], MOMS[0], pos)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic", help="data set spec")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the arms")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check)")
    args = parser.parse_args(argv)
    if args.quick:
        args.data, args.size, args.bs, args.rounds = "synthetic:n_images=160,size=32", 32, 32, 1
    return args


class Bench:
    """The data, the initial weights and the three arms, each timed from building its model
    to the end of its validation pass."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.device = torch.device("cpu")
        self.options = RunOptions(
            dataset=args.data,
            arch=args.arch,
            size=args.size,
            bs=args.bs,
            lr=args.lr,
            epochs=1,
            seed=args.seed,
            device="cpu",
            select="last",
            overwrite=True,
        )
        self.specs = check_options(self.options)
        self.dls = run_dataloaders(self.options, self.specs, self.device)
        self.order = self._epoch_order()
        self.n_steps = (
            len(self.order) // args.bs
            if self.dls.train.drop_last
            else -(-len(self.order) // args.bs)
        )
        self._check_same_initial_weights()
        self.kernel: str | None = None  # the plain arm's AdamW kernel: optimizer_steps picks it
        self.runs = 0

    # -- shared pieces ---------------------------------------------------------------------

    def _epoch_order(self) -> np.ndarray:
        """The order the cxrlt train loader draws in its first epoch (every arm uses it)."""
        train = self.dls.train
        order = np.asarray(train.get_idxs())
        train.epoch = 0
        return order

    def _seed(self) -> None:
        from fastai.torch_core import set_seed

        set_seed(self.args.seed, reproducible=True)  # as `cxrlt run` does before building

    def new_model(self) -> nn.Module:
        self._seed()
        return build_model(self.specs.arch, self.specs.head, len(self.dls.classes))

    def _check_same_initial_weights(self) -> None:
        """The model ``cxr_learner`` builds after the seed is the one the plain arms build."""
        self._seed()
        learner = cxr_learner(
            self.dls,
            self.specs.arch,
            self.specs.loss,
            head=self.specs.head,
        )
        ours, theirs = learner.model.state_dict(), self.new_model().state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), "initial weights differ"
        self.opt_func = learner.opt_func  # the optimiser cxrlt trains with

    def batch(self, start: int, stop: int, split: str = "train") -> tuple[torch.Tensor, Any]:
        """A batch as a minimal loop makes it: one index into the uint8 cache, to float."""
        dataset = (self.dls.train if split == "train" else self.dls.valid).dataset
        index = self.order[start:stop] if split == "train" else np.arange(start, stop)
        pixels = torch.from_numpy(dataset.images[dataset.rows[index]]).unsqueeze(1)
        return pixels.float().div_(255), dataset.targets[torch.from_numpy(index)]

    def _reset_loaders(self) -> None:
        self.dls.train.epoch = 0  # every fastai arm draws the first epoch's order

    # -- the arms --------------------------------------------------------------------------

    def plain(self) -> torch.Tensor:
        bs, lr = self.args.bs, self.args.lr
        model = self.new_model()
        opt = self.plain_optimizer(model.parameters(), self.kernel)
        loss_func = nn.BCEWithLogitsLoss()
        model.train()
        for step in range(self.n_steps):
            images, targets = self.batch(step * bs, min((step + 1) * bs, len(self.order)))
            step_lr, mom = one_cycle(step / self.n_steps, lr)
            for group in opt.param_groups:
                group["lr"], group["betas"] = step_lr, (mom, BETA2)
            loss = loss_func(model(images), targets)
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        logits, valid_bs, n_valid = [], self.dls.valid.bs, len(self.dls.valid.dataset)
        with torch.no_grad():
            for start in range(0, n_valid, valid_bs):
                logits.append(model(self.batch(start, min(start + valid_bs, n_valid), "valid")[0]))
        return torch.cat(logits)

    def fastai(self) -> Any:
        from fastai.callback.schedule import fit_one_cycle  # noqa: F401 - adds the method
        from fastai.learner import Learner

        self._reset_loaders()
        learn = Learner(self.dls, self.new_model(), loss_func=nn.BCEWithLogitsLoss())
        learn.fit_one_cycle(1, self.args.lr)
        return learn

    def cxrlt(self) -> Any:
        self._reset_loaders()
        self.runs += 1
        run_dir = RunDir(self.work / f"cxrlt-{self.runs}", overwrite=True)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        self._seed()
        data = RunData(self.dls, split_halves(self.dls, self.options.seed))
        learn, _epochs = train_and_checkpoint(
            self.options, self.specs, data, self.device, run_dir.path, None, write=True
        )
        return learn

    # -- the data path ---------------------------------------------------------------------

    def loader_time(self, repeats: int) -> float:
        """Seconds per batch of the cxrlt train loader alone, as ``fit`` iterates it."""
        train = self.dls.train

        def one_epoch() -> int:
            train.epoch = 0
            return sum(1 for _ in train)

        seconds, batches = best_time(one_epoch, repeats)
        self._reset_loaders()
        return seconds / batches

    def plain_optimizer(self, params: Any, kernel: str) -> torch.optim.Optimizer:
        """torch's AdamW with fastai's hyper-parameters, running ``kernel`` (one of
        :data:`KERNELS`; its first step raises a RuntimeError where the device has none)."""
        return torch.optim.AdamW(
            params,
            lr=self.args.lr,
            betas=(MOMS[0], BETA2),
            eps=EPS,
            weight_decay=WD,
            **{kernel: True},
        )

    def step_time(self, steps: int) -> float:
        """Median seconds of one forward + backward + optimiser step (cxrlt's) on a batch in
        memory."""
        model = self.new_model().train()
        opt = self.opt_func(list(model.parameters()), lr=self.args.lr)
        images, targets = self.batch(0, self.args.bs)
        loss_func = nn.BCEWithLogitsLoss()
        times = []
        for _ in range(steps + 1):  # the first one warms up
            start = time.perf_counter()
            loss_func(model(images), targets).backward()
            opt.step()
            opt.zero_grad()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    def optimizer_steps(self, repeats: int) -> dict[str, float]:
        """Seconds of an optimiser step alone, on the gradients of one batch: torch's AdamW
        with each kernel the device has (keyed by kernel), fastai's Adam and cxrlt's. The
        plain arm then runs the fastest AdamW kernel (``self.kernel``)."""
        from fastai.optimizer import Adam  # what a fastai Learner takes by default

        model = self.new_model().train()
        images, targets = self.batch(0, self.args.bs)
        nn.BCEWithLogitsLoss()(model(images), targets).backward()
        params = list(model.parameters())
        originals = [p.detach().clone() for p in params]
        optimizers = {}
        for kernel in KERNELS:
            opt = self.plain_optimizer(params, kernel)
            try:
                opt.step()  # torch checks the kernel against the device at the first step
            except RuntimeError:  # it has no such kernel for this device
                continue
            optimizers[kernel] = opt
        optimizers["fastai"] = Adam(params, lr=self.args.lr)
        optimizers["cxrlt"] = self.opt_func(params, lr=self.args.lr)
        seconds = {name: best_time(opt.step, repeats)[0] for name, opt in optimizers.items()}
        with torch.no_grad():
            for p, original in zip(params, originals, strict=True):
                p.copy_(original)
        self.kernel = min((k for k in KERNELS if k in seconds), key=seconds.__getitem__)
        return seconds

    def warm_up(self) -> None:
        """Run every batch shape of the arms once (kernels are prepared per shape), so the
        arm that runs first pays no more than the others."""
        model = self.new_model().train()
        images, targets = self.batch(0, self.args.bs)
        nn.BCEWithLogitsLoss()(model(images), targets).backward()
        model.eval()
        n, bs = len(self.dls.valid.dataset), self.dls.valid.bs
        with torch.no_grad():
            for start in sorted({0, n - n % bs if n % bs else 0}):
                model(self.batch(start, min(start + bs, n), "valid")[0])

    # -- accuracy beside speed ---------------------------------------------------------------

    def valid_map(self, result: Any) -> float:
        """Validation mAP of an arm's trained model (not timed)."""
        targets = self.dls.valid.dataset.targets.numpy()
        if isinstance(result, torch.Tensor):
            return macro_average_precision(result.numpy(), targets)
        model = copy.deepcopy(result.model).eval()
        n, bs = len(targets), self.dls.valid.bs
        with torch.no_grad():
            logits = [model(self.batch(s, min(s + bs, n), "valid")[0]) for s in range(0, n, bs)]
        return macro_average_precision(torch.cat(logits).numpy(), targets)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="cxrlt-loop-") as tmp:
        bench = Bench(args, Path(tmp))
        bench.warm_up()
        step = bench.step_time(steps=2 if args.quick else 4)
        loader = bench.loader_time(repeats=3)
        optimizer = bench.optimizer_steps(repeats=5)
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        maps: dict[str, float] = {}
        for round_ in range(args.rounds):
            for i in range(len(ARMS)):
                arm = ARMS[(round_ + i) % len(ARMS)]  # rotate, so no arm always goes first
                start = time.perf_counter()
                result = getattr(bench, arm)()
                times[arm].append(time.perf_counter() - start)
                if arm not in maps:
                    maps[arm] = bench.valid_map(result)
                print(f"round {round_ + 1}/{args.rounds}: {arm} {times[arm][-1]:.2f} s")
    best = {arm: min(values) for arm, values in times.items()}
    ratios = {arm: best[arm] / best["plain"] for arm in ARMS}
    vs_fastai = {arm: best[arm] / best["fastai"] for arm in ARMS}
    kernel = bench.kernel
    steps = {"plain": optimizer[kernel], "fastai": optimizer["fastai"], "cxrlt": optimizer["cxrlt"]}
    kernels = {k: optimizer[k] for k in KERNELS if k in optimizer}
    share = loader / step
    workers = bench.dls.train.fake_l.num_workers
    n_train, n_valid = len(bench.order), len(bench.dls.valid.dataset)
    lines = [
        f"{args.arch}, {args.size} px, batch {args.bs}, one epoch of {bench.n_steps} steps "
        f"({n_train} training images, {n_valid} validation) on {args.data}, CPU, "
        f"{args.threads} threads; fastest of {args.rounds} interleaved rounds",
        "",
        "| arm | seconds | vs plain loop | vs plain fastai | valid mAP |",
        "|---|---|---|---|---|",
        *(
            f"| {arm} | {best[arm]:.2f} | {ratios[arm]:.3f} | {vs_fastai[arm]:.3f} | "
            f"{maps[arm]:.3f} |"
            for arm in ARMS
        ),
        "",
        "Optimiser step alone (ms): "
        + ", ".join(f"{arm} {steps[arm] * 1e3:.1f}" for arm in ARMS)
        + f" (plain: torch.optim.AdamW, {kernel} kernel, the faster of "
        + ", ".join(f"{k} {s * 1e3:.1f}" for k, s in kernels.items())
        + "; fastai: its Adam; cxrlt: fastai's Adam stepped by torch's fused AdamW kernel).",
        "",
        f"Data path: the train loader ({workers} workers: in-process) takes "
        f"{loader * 1e3:.1f} ms a batch, the model's step {step * 1e3:.0f} ms: loader share "
        f"{share:.2%}.",
    ]
    goals = [
        Goal("cxrlt / plain loop", "<=", 1.03, ratios["cxrlt"]),
        Goal("loader share of step time", "<=", 0.10, share),
    ]
    figures = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "n_steps": bench.n_steps,
        "n_train": n_train,
        "n_valid": n_valid,
        "arms": {
            arm: {"seconds": best[arm], "rounds": times[arm], "valid_mAP": maps[arm]}
            for arm in ARMS
        },
        "ratios": {
            "fastai / plain": ratios["fastai"],
            "cxrlt / plain": ratios["cxrlt"],
            "cxrlt / fastai": vs_fastai["cxrlt"],
        },
        "plain_optimizer": {"kernel": kernel, "step_seconds": kernels},
        "optimizer_step_seconds": steps,
        "data_path": {
            "workers": workers,
            "loader_seconds_per_batch": loader,
            "step_seconds_per_batch": step,
            "loader_share": share,
        },
    }
    return write_results(args.out, "loop_overhead", figures, "\n".join(lines), goals)


if __name__ == "__main__":
    main()
