"""``cxrlt run``: train and evaluate in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.pipeline import RunOptions

_D = RunOptions()


@app.command()
@friendly_errors
def run(
    dataset: options.Dataset = _D.dataset,
    data: options.DataFolder = None,
    arch: Annotated[str, typer.Option(help="Backbone: a registered or any timm name.")] = _D.arch,
    head: Annotated[str, typer.Option(help="Classifier head.")] = _D.head,
    loss: Annotated[str, typer.Option(help="Loss, e.g. 'bce' or 'name:key=value'.")] = _D.loss,
    sampler: Annotated[str, typer.Option(help="Training sampler.")] = _D.sampler,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = _D.epochs,
    bs: Annotated[int, typer.Option(help="Batch size.")] = _D.bs,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one-cycle).")] = _D.lr,
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
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = _D.device,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/<date-time>).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in --out.")] = False,
) -> None:
    """Train on a data set (the embedded synthetic one by default) and evaluate on validation."""
    from cxrlt.pipeline import run as run_pipeline

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
        size=size,
        valid_frac=valid_frac,
        skip_bad=skip_bad,
        letterbox=letterbox,
        augment=augment,
        seed=seed,
        pretrained=pretrained,
        device=device,
        out=out,
        overwrite=overwrite,
    )
    run_pipeline(options, console)
