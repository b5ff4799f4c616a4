"""The flow of ``cxrlt run``: check every name, load data, train, evaluate, write the run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cxrlt import __version__
from cxrlt.errors import CxrltError, CxrltInterrupted
from cxrlt.evaluation.selection import DEFAULT_SELECTION, KEPT, ROLES, role_half
from cxrlt.head_choice import choose_head
from cxrlt.preflight import check_numbers, check_paths, rehearse
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import parse_spec


@dataclass(frozen=True)
class RunOptions:
    """Everything ``cxrlt run`` takes; the defaults train on the embedded data in minutes."""

    dataset: str = "synthetic"
    data: str | None = None
    arch: str = "resnet18"
    head: str | None = None  # None: the head the loss declares, else linear (head_choice)
    loss: str = "bce"
    sampler: str = "uniform"
    epochs: int = 8
    bs: int = 64
    lr: float = 2e-3
    backbone_lr: float | None = None  # None: the same as lr
    size: int = 64
    valid_frac: float = 0.2
    skip_bad: bool = False
    letterbox: bool = False
    augment: bool = False  # pays on long schedules with real data, costs short demo runs
    seed: int = 0
    pretrained: bool | None = None  # None: on for real data sets, off for the embedded one
    precision: str = "auto"  # auto: bf16 (or fp16) on a GPU, 32-bit on the CPU
    channels_last: bool | None = None  # None: on a GPU only
    ema: float = 0.0  # decay of the weight average; 0 switches it off
    grad_clip: float = 0.0  # largest gradient norm; 0 switches clipping off
    select: str = DEFAULT_SELECTION  # how the epoch is chosen: see evaluation.selection
    post: str = ""  # steps, then a calibrator, then a threshold policy: "crt,tta,temp-scale"
    from_run: str | None = None  # skip training: post-train the model of this finished run
    device: str = "auto"
    out: Path | None = None
    overwrite: bool = False


EMBEDDED = "synthetic"  # the data set that trains from scratch by default, offline


def check_specs(options: RunOptions) -> tuple[dict[str, Resolved], list[Resolved]]:
    """Resolve every name before any work starts, so a typo costs nothing: the specs by role,
    and the post-training steps in order.

    Backbones that declare ``pretrained`` start from pretrained weights on real data sets
    unless told otherwise; the embedded data set trains from scratch, so the first run works
    offline. Without ``--head``
    the loss's declared head is used (:func:`cxrlt.head_choice.choose_head`).
    """
    dataset = resolve("datasets", options.dataset)
    arch = parse_spec(options.arch)
    pretrained = options.pretrained
    if pretrained is None and "pretrained" not in arch.params:
        pretrained = dataset.entry.name != EMBEDDED
    loss = resolve("losses", options.loss)
    specs = {
        "dataset": dataset,
        "sampler": resolve("samplers", options.sampler),
        "arch": resolve("backbones", arch, pretrained=pretrained),
        "head": choose_head(loss, options.head)[0],
        "loss": loss,
    }
    from cxrlt.post import split_post

    steps, calibrator, thresholds = split_post(options.post)
    specs["thresholds"] = thresholds or resolve("thresholds", DEFAULT_THRESHOLDS)
    if calibrator is not None:
        specs["calibrator"] = calibrator
    return specs, steps


DEFAULT_THRESHOLDS = "fixed"  # 0.5: mF1 as the challenges compute it


def check_options(options: RunOptions) -> tuple[dict[str, Resolved], list[Resolved]]:
    """Every number and name of ``options``, and every part of the run built once on stand-in
    inputs (:mod:`cxrlt.preflight`), before any work; returns as :func:`check_specs`."""
    check_numbers(options)
    return rehearsed_specs(options)


def rehearsed_specs(options: RunOptions) -> tuple[dict[str, Resolved], list[Resolved]]:
    """As :func:`check_specs`, every part then built once on stand-in inputs."""
    specs, steps = check_specs(options)
    rehearse(specs, steps, options.epochs)
    return specs, steps


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


def saved_options(run_path: Path | str) -> RunOptions:
    """The options a run was started with, read from its config."""
    from cxrlt.outputs.run_dir import RunDir

    saved = RunDir(run_path, check=False).read_config().get("options")
    known = {field.name for field in dataclasses.fields(RunOptions)}
    if not isinstance(saved, dict) or not set(saved) <= known:
        raise CxrltError(
            f"{Path(run_path) / 'config.json'} was not written by `cxrlt run` (its 'options' "
            "are missing or unknown): give the folder of a cxrlt run."
        )
    return RunOptions(**saved)


def resume_options(run_path: Path | str, **changes: Any) -> RunOptions:
    """The options an interrupted run was started with, to continue it in its own folder;
    ``changes`` (a corrected ``post``) apply to what comes after training."""
    return dataclasses.replace(
        saved_options(run_path), out=Path(run_path), overwrite=False, **changes
    )


def from_run_options(run_path: Path | str, **changes: Any) -> RunOptions:
    """Options that post-train a finished run's model again: its data, split and training
    settings, with ``changes`` (``post``, ``out``, ``overwrite``, ``device``) applied."""
    reset = {"out": None, "overwrite": False, "from_run": str(run_path)}
    return dataclasses.replace(saved_options(run_path), **{**reset, **changes})


def run(
    options: RunOptions, console: Console | None = None, *, resume: bool = False
) -> tuple[Any, Any]:
    """Train and evaluate as ``options`` say; returns the run directory and the metric report.

    With ``resume`` the run in ``options.out`` continues from its last checkpoint. Under
    ``torchrun``/``accelerate launch`` every process trains and the first writes the run.
    Ctrl-C stops with the command that continues the run (:class:`CxrltInterrupted`).
    """
    from cxrlt.outputs.run_dir import RunDir
    from cxrlt.training import distributed

    console = console or Console()

    check_numbers(options)
    device = distributed.setup_device(pick_device(options.device))
    main = distributed.is_main_process()
    out = Path(distributed.broadcast_from_main(options.out or default_out()))
    check_paths(options, out, resume=resume)  # every rank: one that stops alone would hang
    specs, post = rehearsed_specs(options)
    run_dir = RunDir(out, check=False)  # checked: check_paths
    try:
        return _run(options, specs, post, console, run_dir, device, main, resume=resume)
    except KeyboardInterrupt:
        ours = resume or run_dir.started  # else the folder may hold the run --overwrite keeps
        raise CxrltInterrupted(_interrupted_advice(out, options, ours=ours)) from None


def _run(
    options: RunOptions,
    specs: dict[str, Resolved],
    post: list[Resolved],
    console: Console,
    run_dir: Any,
    device: Any,
    main: bool,
    *,
    resume: bool,
) -> tuple[Any, Any]:
    from cxrlt.outputs.report import print_data_summary
    from cxrlt.outputs.run_dir import LAST_WEIGHTS, SPLIT
    from cxrlt.training import distributed

    if not main:
        console = Console(quiet=True)
    if head_note := choose_head(specs["loss"], options.head)[1]:
        console.print(head_note, markup=False)
    checkpoint = _load_resume_state(run_dir, console, options) if resume else None
    base = _base_run(options.from_run) if options.from_run else None
    seed_run(options.seed, device)
    dls = run_dataloaders(options, specs, device)
    print_data_summary(console, dls)
    test_images = _decode_test_images(options, dls)  # every rank: the cache is shared
    halves = split_halves(dls, options.seed)
    if base is not None:  # its weights loaded before anything is written: a bad file stops here
        _check_same_split(base, dls.split_table(halves))
        learn = _trained_learner(options, specs, dls, device, run_dir, base)
    every_post = (base.post if base else []) + post  # what the saved model went through
    if main:
        if not resume:
            run_dir.start()  # what --overwrite replaces goes only now, every check passed
        run_dir.write_config(_config(options, specs, every_post, dls, device, status="training"))
        run_dir.write_table(SPLIT, dls.split_table(halves))
        if len(dls.skipped):
            run_dir.write_table("skipped.csv", dls.skipped)
    if base is None:
        learn, epochs = train_and_checkpoint(
            options, specs, dls, device, run_dir, checkpoint, main, halves
        )
        training = _training_record(options, epochs)
        starts = _epoch_starts(options.select, epochs)
        state_of, epochs_done = epochs.epoch_state, epochs.epochs_done
        if main:
            if starts[KEPT] != epochs.epochs_done:
                run_dir.write_weights(learn.model, LAST_WEIGHTS)  # the last epoch's first
            _mark_trained(options, specs, dls, device, run_dir, learn, epochs, training)
    else:
        epochs = None
        training = {**base.config.get("training", {}), "from_run": options.from_run}
        starts = {role: base.weights[role] for role in ROLES}
        state_of = _base_weights(base)
        epochs_done = None
        console.print(f"Starting from the trained model of {options.from_run} (no training).")
    try:
        if post:
            console.print(f"Post-training: {', '.join(str(step.spec) for step in post)}")
        branches = build_branches(
            options.select, learn, post, starts, state_of, halves, device, last=epochs_done
        )
        checksums = distributed.gather_checksums(learn.model)
        if not main:
            distributed.wait_for_every_rank_to_finish()
            distributed.cleanup()
            return run_dir, None
        predict_branches(learn, branches)  # rank 0 alone, once the others wait for it
        selection = _selection_record(options.select, branches, epochs)
        report = _evaluate_and_write(
            options, specs, learn, dls, run_dir, console, branches, halves, selection, test_images
        )
        if post or base is not None:  # else the trained weights, written already, are these
            for name, model in _weights_files(branches).items():
                run_dir.write_weights(model, name)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - every late failure keeps the trained model
        advice = _late_failure_advice(error, run_dir, options, trained=base is None)
        raise CxrltError(advice) from error
    config = _config(options, specs, every_post, dls, device, status="complete")
    config["training"] = training
    config["selection"] = selection
    if len(checksums) > 1:  # every rank's weights, to show they agree
        config["distributed"] = {"world_size": len(checksums), "weights_checksums": checksums}
    run_dir.write_config(config)
    if epochs is not None:
        epochs.remove_files()
    distributed.wait_for_every_rank_to_finish()
    distributed.cleanup()
    console.print(f"Run written to [bold]{run_dir.path}[/bold]")
    return run_dir, report


TRAINED = "trained"  # config status once training is done and its weights are written


def _mark_trained(
    options: RunOptions,
    specs: dict[str, Resolved],
    dls: Any,
    device: Any,
    run_dir: Any,
    learn: Any,
    epochs: Any,
    training: dict,
) -> None:
    """Write the trained models (per role, as ``--select`` chose) and mark the run trained,
    before post-training, calibration, evaluation or the submission can fail: ``--resume``
    and ``--from-run`` then go on from these weights without training again. A chosen
    epoch's weights are written from its saved state, with no copy of the model."""
    starts = _epoch_starts(options.select, epochs)
    files = _role_files(starts)
    for name, role in {name: role for role, name in files.items()}.items():
        if starts[role] == epochs.epochs_done:
            run_dir.write_weights(learn.model, name)
        else:
            run_dir.write_state(epochs.epoch_state(starts[role]), name)
    config = _config(options, specs, [], dls, device, status=TRAINED)
    config["training"] = training
    config["selection"] = {"protocol": options.select, "starts": starts, "weights": files}
    run_dir.write_config(config)


def _role_files(keys: dict[str, Any]) -> dict[str, str]:
    """Per role, the weights file of its model: the kept model's in model.safetensors, a
    half's own (chosen on the other half) in model-<half>.safetensors when it differs."""
    from cxrlt.outputs.run_dir import WEIGHTS

    return {
        role: WEIGHTS
        if role == KEPT or keys[role] == keys[KEPT]
        else WEIGHTS.replace("model", f"model-{role}")
        for role in ROLES
    }


def _resume_command(out: Path) -> str:
    return f"cxrlt run --resume {shlex.quote(str(out))}"


def _interrupted_advice(out: Path, options: RunOptions, *, ours: bool) -> str:
    """Where Ctrl-C stopped the run and the exact command that continues it; ``ours``: the
    folder holds this run (not yet the one ``--overwrite`` would have replaced)."""
    from cxrlt.outputs.run_dir import LOG

    if not ours:
        return (
            "Interrupted before training started; nothing was written to the run folder (the "
            "image cache keeps the images decoded so far). Run the same command again."
        )
    if options.from_run:
        return (
            f"Interrupted while post-training the model of {options.from_run} (unchanged). "
            f"Continue with: {_resume_command(out)}"
        )
    log = out / LOG
    epochs = max(0, len(log.read_text(encoding="utf-8").splitlines()) - 1) if log.is_file() else 0
    return (
        f"Interrupted after {epochs} of {options.epochs} epochs; the run so far is kept in "
        f"{out}. Continue it with: {_resume_command(out)}"
    )


ERROR_FILE = "error.txt"  # the traceback of an unexpected late failure, for a bug report


def _late_failure_advice(
    error: Exception, run_dir: Any, options: RunOptions, *, trained: bool
) -> str:
    """A failure after training, with how to go on without training again. An unexpected
    error (a bug, not bad input) keeps its traceback in the run folder."""
    import traceback

    from cxrlt.errors import os_error_message
    from cxrlt.io import write_text

    out = run_dir.path
    if isinstance(error, CxrltError):
        cause = str(error)
    elif isinstance(error, OSError) and (text := os_error_message(error)):
        cause = text
    else:
        trace = run_dir.file(ERROR_FILE)
        write_text(trace, "".join(traceback.format_exception(error)))
        cause = f"{type(error).__name__}: {error} (the traceback is in {trace})."
    if not trained:
        return (
            f"{cause} The base run {options.from_run} is unchanged: fix the cause, then continue "
            f"with {_resume_command(out)}, or run the command again with --overwrite."
        )
    return (
        f"{cause} Training had finished: its weights are kept in {out} (marked trained). Fix "
        f"the cause, then post-train and evaluate without training again: "
        f"{_resume_command(out)} [--post STEPS], or "
        f"cxrlt run --from-run {shlex.quote(str(out))} --post STEPS --out NEW_FOLDER."
    )


@dataclass(frozen=True)
class BaseRun:
    """A finished run whose trained model a ``--from-run`` run post-trains again."""

    path: Path
    config: dict[str, Any]
    post: list[Resolved]  # the steps its model already went through

    @property
    def weights(self) -> dict[str, str]:
        """Per role, the file of the model it used (runs before cross-fitting kept one)."""
        from cxrlt.outputs.run_dir import WEIGHTS

        saved = self.config.get("selection", {}).get("weights", {})
        return {role: saved.get(role, WEIGHTS) for role in ROLES}


def _base_run(path: str) -> BaseRun:
    from cxrlt.outputs.run_dir import check_weights
    from cxrlt.prediction import complete_run, post_steps

    run_dir, config = complete_run(path, trained=True)
    base = BaseRun(run_dir.path, config, [resolve("post", step) for step in post_steps(config)])
    for name in set(base.weights.values()):
        check_weights(base.path / name)
    return base


@dataclass
class Branch:
    """A model the run builds after training, and its validation logits (rank 0 only)."""

    start: Any  # where its weights came from: an epoch, or a base run's weights file
    model: Any
    choices: list = dataclasses.field(default_factory=list)  # what its post steps chose
    logits: Any = None  # (validation images, classes), once predicted


def split_halves(dls: Any, seed: int) -> Any:
    from cxrlt.data.split import validation_halves

    valid = dls.is_valid
    try:
        return validation_halves(dls.data.patients[valid], dls.data.labels[valid], seed=seed)
    except ValueError:
        raise CxrltError(
            "The validation split holds a single patient, so it cannot be cut into the two "
            "halves that choose (the epoch, calibration, thresholds) and report: use a larger "
            "--valid-frac."
        ) from None


def _epoch_starts(select: str, epochs: Any) -> dict[str, int]:
    """Per role, the epoch (from 1) its model starts from, as ``select`` chooses."""
    from cxrlt.evaluation.selection import epoch_score

    starts = {}
    for role in ROLES:
        score = epoch_score(select, role_half(role))
        best = epochs.best.get(score) if score else None
        starts[role] = best["epoch"] if best else epochs.epochs_done
    return starts


def _check_same_split(base: BaseRun, split: Any) -> None:
    """A ``--from-run`` run reports each validation half with models chosen on the other, so
    its split and halves must be the base run's: the same images on the same sides."""
    import numpy as np
    import pandas as pd

    from cxrlt.outputs.run_dir import SPLIT

    path = base.path / SPLIT
    saved = pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None
    columns = [c for c in ("ImageID", "split", "half") if saved is not None and c in saved]
    ours = split[columns].astype(object).where(split[columns].notna(), "").astype(str)
    if saved is None or not np.array_equal(ours.to_numpy(), saved[columns].to_numpy(str)):
        raise CxrltError(
            f"The training/validation split or its halves differ from {path} (or it is "
            "missing): the base run's models were chosen on other images, so --from-run "
            "cannot report on these. Use the base run's data, --valid-frac and --seed, or "
            "train a new run."
        )


def _base_weights(base: BaseRun) -> Any:
    from cxrlt.outputs.run_dir import read_weights

    return lambda name: read_weights(base.path / name)


def build_branches(
    select: str,
    learn: Any,
    post: list[Resolved],
    starts: dict[str, Any],
    state_of: Any,
    halves: Any,
    device: Any,
    *,
    last: int | None,
) -> dict[str, Branch]:
    """Per role, its model: the weights ``state_of(starts[role])`` (the model as it is for the
    ``last`` epoch) with ``post`` applied.

    The models reporting each half start from the weights chosen on the other half, and
    post steps that choose by a validation score choose on the other half too; the kept model
    chooses on every image. Roles that would build the same model share it, so a run whose
    choices agree (or ``--select last`` without such steps) builds one. Every rank builds
    alike (post steps that train do so data-parallel), from the weights rank 0 loads.
    ``learn.model`` ends as the kept model.
    """
    import copy

    import cxrlt.post  # noqa: F401 - adds Learner.post
    from cxrlt.evaluation.selection import choice_rows
    from cxrlt.training import distributed

    chooses = any(getattr(step.build(), "chooses_on_validation", False) for step in post)
    rows = {role: choice_rows(select, halves, role_half(role)) for role in ROLES}
    keys = {role: (starts[role], rows[role].tobytes() if chooses else None) for role in ROLES}
    template, steps_before = learn.model, list(getattr(learn, "post_steps", []))
    built: dict[Any, Branch] = {}
    for role in ROLES:
        if keys[role] in built:
            continue
        model = copy.deepcopy(template)
        if distributed.is_main_process() and starts[role] != last:
            model.load_state_dict(state_of(starts[role]))
        learn.model, learn.post_steps = model.to(device), list(steps_before)
        learn.post_choices = []
        distributed.broadcast_weights(learn.model)
        if post:  # every rank: steps that train do so data-parallel, from rank 0's weights
            learn.choice_rows = rows[role]
            with distributed.distributed(learn, device):
                learn.post(post)
            del learn.choice_rows
        built[keys[role]] = Branch(starts[role], learn.model, learn.post_choices)
    branches = {role: built[keys[role]] for role in ROLES}
    learn.model = branches[KEPT].model
    return branches


def predict_branches(learn: Any, branches: dict[str, Branch]) -> None:
    """Each distinct model's validation logits, on this rank alone (rank 0, after the others
    have finished their collectives)."""
    from cxrlt.training.distributed import rank_local

    kept = learn.model
    for branch in {id(b): b for b in branches.values()}.values():
        learn.model = branch.model
        with rank_local(learn):  # no gathering from the others
            logits, _ = learn.get_preds(ds_idx=1, act=lambda x: x)
        branch.logits = logits.float().numpy()
    learn.model = kept


def _trained_learner(
    options: RunOptions,
    specs: dict[str, Resolved],
    dls: Any,
    device: Any,
    run_dir: Any,
    base: BaseRun,
) -> Any:
    """A learner holding the base run's model (its post steps' structure, its weights), with
    the callbacks that shape a batch, ready for more post-training steps."""
    from cxrlt.outputs.run_dir import load_weights
    from cxrlt.post import rebuild
    from cxrlt.prediction import backbone_without_weights
    from cxrlt.training.guards import StopOnNonFiniteLoss
    from cxrlt.training.learner import cxr_learner

    saved = base.config["data"]
    if list(saved["classes"]) != list(dls.classes) or saved["n_train"] != dls.n_train:
        raise CxrltError(
            f"The data set no longer matches the one {base.path} was trained on (its classes "
            f"or its {saved['n_train']} training images differ): --from-run needs the same "
            "data; train a new run instead."
        )
    learn = cxr_learner(
        dls,
        str(backbone_without_weights(str(specs["arch"].spec)).spec),
        str(specs["loss"].spec),
        head=str(specs["head"].spec),
        path=run_dir.path,
        cbs=[StopOnNonFiniteLoss(), *step_callbacks(options, device)],
    )
    learn.model = rebuild(learn.model, [step.spec for step in base.post], dls.classes)
    load_weights(learn.model, base.path / base.weights[KEPT])
    learn.model.to(device)
    return learn


def run_dataloaders(options: RunOptions, specs: dict[str, Resolved], device: Any) -> Any:
    """The data set split and loaded as ``options`` say (``specs`` from :func:`check_options`)."""
    from cxrlt.data.loaders import cxr_dataloaders

    return cxr_dataloaders(
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


def _load_resume_state(run_dir: Any, console: Console, options: RunOptions) -> dict | None:
    """The checkpoint to continue from; None when the run stopped before its first epoch
    ended (it then starts training afresh in its own folder) or never trains (--from-run)."""
    from cxrlt.outputs.run_dir import METRICS
    from cxrlt.training.checkpoint import CHECKPOINT, load_checkpoint

    run_dir.read_config()  # a folder that holds no run is refused, naming it
    if not run_dir.file(CHECKPOINT).exists():
        if run_dir.file(METRICS).exists():
            raise CxrltError(
                f"{run_dir.path} is a complete run: there is nothing to resume. Train it again "
                f"with --out {run_dir.path} --overwrite, or post-train its model differently "
                f"with --from-run {run_dir.path} --post STEPS --out NEW_FOLDER."
            )
        if options.from_run:
            console.print(f"Post-training the model of {options.from_run} again.")
        else:
            console.print(f"{run_dir.path} stopped before its first epoch ended: training afresh.")
        return None
    state = load_checkpoint(run_dir.path)
    epochs = options.epochs
    if state["n_epoch"] != epochs:
        raise CxrltError(
            f"The checkpoint in {run_dir.path} belongs to a {state['n_epoch']}-epoch run, its "
            f"config.json says {epochs} epochs: the folder was altered. Start the run again "
            "with --overwrite."
        )
    return state


def train_and_checkpoint(
    options: RunOptions,
    specs: dict[str, Resolved],
    dls: Any,
    device: Any,
    run_dir: Any,
    resume_state: dict | None,
    main: bool,
    halves: Any,
) -> tuple[Any, Any]:
    """Fit the one-cycle schedule with checkpoints, keeping the best weights by the mAP of
    the whole validation split and of each of its ``halves``; returns the learner and the
    checkpointer."""
    from cxrlt.outputs.run_dir import LOG
    from cxrlt.training import distributed
    from cxrlt.training.checkpoint import EpochCheckpoint
    from cxrlt.training.guards import NonFiniteLoss, StopOnNonFiniteLoss
    from cxrlt.training.learner import cxr_learner
    from cxrlt.training.run_log import RunLog
    from cxrlt.training.selection import HalfScores

    scores = HalfScores(halves)
    epochs = EpochCheckpoint(run_dir.path, resume=resume_state, write=main, scores=scores.latest)
    keep = resume_state["epochs_done"] if resume_state else None
    callbacks = [StopOnNonFiniteLoss(), scores, epochs, *step_callbacks(options, device)]
    if main:
        callbacks.append(RunLog(LOG, keep_epochs=keep))
    learn = cxr_learner(
        dls,
        str(specs["arch"].spec),
        str(specs["loss"].spec),
        head=str(specs["head"].spec),
        path=run_dir.path,
        cbs=callbacks,
    )
    lr = slice(options.backbone_lr, options.lr) if options.backbone_lr else options.lr
    try:
        with distributed.distributed(learn, device):
            learn.fit_one_cycle(options.epochs, lr)
    except KeyboardInterrupt:
        epochs.wait()  # the last finished epoch's checkpoint, being written, is kept whole
        raise
    except NonFiniteLoss as error:
        kept = (
            f" The checkpoint after epoch {epochs.epochs_done} is kept in {run_dir.path}."
            if epochs.epochs_done and main
            else ""
        )
        raise NonFiniteLoss(f"{error}{kept}") from None
    return learn, epochs


def step_callbacks(options: RunOptions, device: Any) -> list:
    """Mixed precision, channels-last, gradient clipping and weight averaging, as asked."""
    from fastai.callback.training import GradientClip  # clips after the fp16 unscale

    from cxrlt.training.averaging import WeightAveraging
    from cxrlt.training.precision import precision_callbacks

    callbacks = precision_callbacks(options.precision, options.channels_last, device)
    if options.grad_clip:
        callbacks.append(GradientClip(options.grad_clip))
    if options.ema:
        callbacks.append(WeightAveraging(options.ema))
    return callbacks


def _evaluate_and_write(
    options: RunOptions,
    specs: dict[str, Any],
    learn: Any,
    dls: Any,
    run_dir: Any,
    console: Console,
    branches: dict[str, Branch],
    halves: Any,
    selection: dict,
    test_images: Any,
) -> Any:
    """Calibrate on held-out halves of the validation split, evaluate, write the run's
    results, and a submission when there are test images.

    Each half is reported with the logits of the model chosen on the other half.
    """
    import numpy as np

    from cxrlt.calibration.calibrators import LossActivation
    from cxrlt.calibration.held_out import fit_held_out
    from cxrlt.evaluation.metrics import evaluate
    from cxrlt.evaluation.selection import cross_fitted
    from cxrlt.outputs.report import print_report

    targets = dls.data.labels[dls.is_valid].astype(np.float32)
    logits = cross_fitted([branches[role].logits for role in ROLES[:-1]], halves)
    activation = LossActivation(learn.loss_func)

    fitted = fit_held_out(
        [branches[role].logits for role in ROLES[:-1]],
        targets,
        halves,
        activation=activation,
        calibrator=specs.get("calibrator"),
        thresholds=specs["thresholds"],
        train_prevalence=dls.class_counts / dls.n_train,
        kept_logits=branches[KEPT].logits,
    )
    report = evaluate(
        fitted.probs,
        targets,
        dls.classes,
        threshold=fitted.thresholds,
        scores=logits,
        train_counts=dls.class_counts,
        patients=dls.data.patients[dls.is_valid],
    )
    valid_ids = dls.data.frame["ImageID"][dls.is_valid].tolist()
    run_dir.write_predictions(
        valid_ids,
        dls.classes,
        targets,
        logits,
        activation(logits),
        calibrated=fitted.probs if fitted.calibrator is not None else None,
        predicted=fitted.probs >= fitted.thresholds,
    )
    run_dir.write_metrics(report, selection)
    run_dir.write_calibration(_calibration_record(specs, fitted))
    print_report(console, report, dls.class_counts)
    console.print(selection["description"])
    if test_images is not None:
        probs = _predict_test(options, learn, test_images, fitted.calibrator, activation)
        _write_submission(dls, probs, run_dir, console)
    return report


def _weights_files(branches: dict[str, Branch]) -> dict[str, Any]:
    """The file of each distinct model (:func:`_role_files`) and the model."""
    return {name: branches[role].model for role, name in _branch_files(branches).items()}


def _branch_files(branches: dict[str, Branch]) -> dict[str, str]:
    return _role_files({role: id(branches[role].model) for role in ROLES})


def _selection_record(select: str, branches: dict[str, Branch], epochs: Any) -> dict:
    """How the reported figures were chosen, for config.json, metrics.json and the console."""
    from cxrlt.evaluation.selection import describe

    starts = {role: branches[role].start for role in ROLES}
    return {
        "protocol": select,
        "starts": starts,
        "weights": _branch_files(branches),
        "post_choices": {role: branches[role].choices for role in ROLES},
        "description": describe(select, starts if epochs is not None else {}),
    }


def _calibration_record(specs: dict[str, Any], fitted: Any) -> dict:
    """What prediction reloads: the calibrator and thresholds fitted on all validation images."""
    calibrator = fitted.calibrator
    return {
        "fitted_on": "every validation image (the reported metrics use patient-grouped halves, "
        "each scored by what the other half fitted)",
        "calibrator": None
        if calibrator is None
        else {"spec": str(specs["calibrator"].spec), "state": calibrator.state()},
        "thresholds": {
            "spec": str(specs["thresholds"].spec),
            "state": fitted.threshold_policy.state(),
        },
    }


def _decode_test_images(options: RunOptions, dls: Any) -> Any:
    """The data set's test images, decoded (into the cache) before training, so that an
    unreadable one stops the run before it costs a training run; None without test images."""
    from cxrlt.prediction import decode_test_images

    if dls.data.test is None:
        return None
    return decode_test_images(
        dls.data.test, options.size, letterbox=options.letterbox, consequence="Nothing was trained"
    )


def _predict_test(
    options: RunOptions, learn: Any, images: Any, calibrator: Any, activation: Any
) -> Any:
    """The run's probabilities for the data set's decoded test images."""
    from cxrlt.prediction import predict_logits

    device = next(learn.model.parameters()).device
    logits = predict_logits(learn.model, images, options.bs, device)
    return calibrator.transform(logits) if calibrator is not None else activation(logits)


def _write_submission(dls: Any, probs: Any, run_dir: Any, console: Console) -> None:
    """The challenge file for the test images, validated before it is written."""
    from cxrlt.outputs.run_dir import SUBMISSION
    from cxrlt.outputs.submission import write_dataset_submission

    ids = dls.data.test["ImageID"]
    path, fmt = write_dataset_submission(
        run_dir.file(SUBMISSION), dls.data.name, ids, probs, dls.classes
    )
    console.print(f"Submission for {len(ids)} test images ({fmt.name} format): {path}")


def _config(
    options: RunOptions,
    specs: dict[str, Resolved],
    post: list[Resolved],
    dls: Any,
    device: Any,
    *,
    status: str,
) -> dict:
    import torch

    config = {
        "cxrlt_version": __version__,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "status": status,
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(options).items()
        },
        "specs": {role: resolved.to_dict() for role, resolved in specs.items()},
        "post": [step.to_dict() for step in post],
        "data": {
            "n_train": dls.n_train,
            "n_valid": int(dls.is_valid.sum()),
            "classes": list(dls.classes),
            "train_counts": dls.class_counts.tolist(),
            "provenance": dict(dls.data.provenance),
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(device),
        },
    }
    return config


def _training_record(options: RunOptions, epochs: Any) -> dict:
    """The epochs trained and the best by each validation score, for the config."""
    return {
        "epochs_done": epochs.epochs_done,
        "best_epoch": epochs.best_epoch,
        "best_valid_mAP": epochs.best_score,
        "best_by_score": epochs.best,
        "kept_epoch": _epoch_starts(options.select, epochs)[KEPT],
    }
