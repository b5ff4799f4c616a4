"""``cxrlt evaluate``: a finished run scored on another labelled data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.cli.output import Json, Quiet, command_console, command_stdout, print_json


def _print_synonyms(value: bool) -> None:
    """``--synonyms``: the table class names are matched by, then exit."""
    if not value:
        return
    from cxrlt.data.synonyms import synonyms_markdown

    console.print(
        "Class names are matched after normalising case, spaces, underscores and hyphens, "
        "then through these synonyms (cxrlt/data/synonyms.py):\n",
        highlight=False,
    )
    console.print(synonyms_markdown(), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit()


@app.command()
@friendly_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Folder of a finished run or ensemble.")],
    dataset: Annotated[
        str,
        typer.Option(
            help="The other labelled data set (see `cxrlt list datasets`); every labelled "
            "image is scored: there is no split."
        ),
    ],
    data: options.DataFolder = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder of the results (default: RUN-on-DATASET beside RUN)."),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option(help="Leave out bad rows (listed in skipped.csv) instead of stopping.")
    ] = False,
    bs: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    device: options.Device = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace results already in --out.")] = False,
    synonyms: Annotated[
        bool,
        typer.Option(
            "--synonyms",
            help="Print the synonym table class names are matched by, and exit.",
            is_eager=True,
            callback=_print_synonyms,
        ),
    ] = False,
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Score a run on the classes it shares with another labelled data set (matched by name,
    through the synonyms `--synonyms` prints), with its calibrator and thresholds; the same
    report as `cxrlt run`, written like a run directory with classes.csv of the matching."""
    from cxrlt.cross_dataset import evaluate_on
    from cxrlt.registry import resolve
    from cxrlt.workflows.setup import pick_device

    if out is None:
        out = run.parent / f"{run.name}-on-{resolve('datasets', dataset).entry.name}"
    with command_stdout(json=json, quiet=quiet):
        evaluated = evaluate_on(
            run,
            dataset,
            data=data,
            out=out,
            bs=bs,
            device=pick_device(device),
            skip_bad=skip_bad,
            overwrite=overwrite,
            console=command_console(json=json, quiet=quiet),
        )
    if json:
        print_json({"run": str(out), "metrics": evaluated.out.read_metrics()})
