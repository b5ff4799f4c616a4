"""``cxrlt run``: train and evaluate in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.errors import CxrltError
from cxrlt.evaluation.selection import SELECTIONS
from cxrlt.pipeline import RunOptions

_D = RunOptions()


@app.command()
@friendly_errors
def run(
    dataset: options.Dataset = _D.dataset,
    data: options.DataFolder = None,
    arch: Annotated[str, typer.Option(help="Backbone: a registered or any timm name.")] = _D.arch,
    head: options.Head = _D.head,
    loss: Annotated[str, typer.Option(help="Loss, e.g. 'bce' or 'name:key=value'.")] = _D.loss,
    sampler: options.Sampler = _D.sampler,
    epochs: options.Epochs = _D.epochs,
    bs: options.BatchSize = _D.bs,
    lr: options.LearningRate = _D.lr,
    backbone_lr: Annotated[
        float | None,
        typer.Option(help="Peak learning rate of the backbone (default: the head's, --lr)."),
    ] = None,
    size: options.Size = _D.size,
    valid_frac: Annotated[
        float, typer.Option(help="Share of images held out, by patient.")
    ] = _D.valid_frac,
    skip_bad: Annotated[
        bool, typer.Option(help="Leave out bad rows (listed in skipped.csv) instead of stopping.")
    ] = False,
    letterbox: options.Letterbox = False,
    augment: Annotated[
        bool,
        typer.Option(help="Small affine and exposure changes in training (pays on long runs)."),
    ] = _D.augment,
    seed: Annotated[
        int, typer.Option(help="Random seed (split, order, initialisation).")
    ] = _D.seed,
    pretrained: Annotated[
        bool | None,
        typer.Option(help="Start from pretrained backbone weights (default: as --arch says)."),
    ] = None,
    precision: Annotated[
        str, typer.Option(help="auto (bf16/fp16 on a GPU, 32 on the CPU), 32, bf16 or fp16.")
    ] = _D.precision,
    channels_last: Annotated[
        bool | None, typer.Option(help="Channels-last memory format (default: on a GPU).")
    ] = None,
    ema: Annotated[
        float, typer.Option(help="Average the weights with this decay (e.g. 0.999); 0: off.")
    ] = _D.ema,
    grad_clip: Annotated[
        float, typer.Option(help="Clip the gradient norm to this value; 0: off.")
    ] = _D.grad_clip,
    post: Annotated[
        str,
        typer.Option(
            help="After training, in order: post-training steps, then a calibrator, then a "
            "threshold policy, e.g. 'crt,tta,temp-scale,f1-per-class'."
        ),
    ] = _D.post,
    select: Annotated[
        str,
        typer.Option(
            help="How the epoch (and tau) are chosen. "
            + "; ".join(f"'{name}': {text}" for name, text in SELECTIONS.items())
            + "."
        ),
    ] = _D.select,
    device: options.Device = _D.device,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/<date-time>).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in --out.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the interrupted or failed run in this folder, with its own options "
            "(a corrected --post may be given: training already done is not repeated)."
        ),
    ] = None,
    from_run: Annotated[
        Path | None,
        typer.Option(
            help="Skip training: apply --post to the model of this finished run (same data, "
            "split and options) and evaluate it as a new run."
        ),
    ] = None,
    ctx: typer.Context = None,
) -> None:
    """Train on a data set (the embedded synthetic one by default) and evaluate on validation."""
    from cxrlt.pipeline import from_run_options, resume_options
    from cxrlt.pipeline import run as run_pipeline

    if resume is not None:
        _refuse_other_options(
            ctx,
            ("resume", "post"),
            "--resume continues a run with the options it started with (only --post may change)",
        )
        changes = {"post": post} if _given(ctx, "post") else {}
        run_pipeline(resume_options(resume, **changes), console, resume=True)
        return
    if from_run is not None:
        kept = ("from_run", "post", "out", "overwrite", "device")
        _refuse_other_options(ctx, kept, "--from-run takes the trained run's own options")
        changes = {"post": post, "out": out, "overwrite": overwrite, "device": device}
        run_pipeline(from_run_options(from_run, **changes), console)
        return
    options = RunOptions(
        dataset=dataset,
        data=data,
        arch=arch,
        head=head,
        loss=loss,
        sampler=sampler,
        epochs=epochs,
        bs=bs,
        lr=lr,
        backbone_lr=backbone_lr,
        size=size,
        valid_frac=valid_frac,
        skip_bad=skip_bad,
        letterbox=letterbox,
        augment=augment,
        seed=seed,
        pretrained=pretrained,
        precision=precision,
        channels_last=channels_last,
        ema=ema,
        grad_clip=grad_clip,
        select=select,
        post=post,
        device=device,
        out=out,
        overwrite=overwrite,
    )
    run_pipeline(options, console)


def _refuse_other_options(ctx: typer.Context, accepted: tuple[str, ...], reason: str) -> None:
    """Refuse the options, other than ``accepted``, that would be silently ignored."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ctx.params
        if name not in accepted and _given(ctx, name)
    ]
    if given:
        raise CxrltError(f"{reason}; leave out {', '.join(given)} (or start a new run with them).")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was on the command line (typer bundles its own click)."""
    return ctx.get_parameter_source(name).name != "DEFAULT"
