"""``cxrlt sweep``: a grid of losses x backbones x post-training x seeds, and its table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.errors import CxrltError
from cxrlt.pipeline import RunOptions

if TYPE_CHECKING:
    from cxrlt.sweep import Sweep

_D = RunOptions()


@app.command()
@friendly_errors
def sweep(
    loss: Annotated[str, typer.Option(help="Losses to compare, e.g. 'bce,asl,ldam-drw'.")] = (
        _D.loss
    ),
    arch: Annotated[str, typer.Option(help="Backbones, e.g. 'resnet18,convnext_atto'.")] = (
        _D.arch
    ),
    post: Annotated[
        str,
        typer.Option(
            help="Post-training alternatives: 'none' or steps joined by '+', e.g. "
            "'none,crt,crt+tta+temp-scale'. Each starts from its 'none' cell's trained model."
        ),
    ] = "none",
    seeds: Annotated[int, typer.Option(help="Seeds per cell: 0, 1, ... seeds-1.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder of the sweep, one run folder per cell.")] = (
        Path("sweep")
    ),
    dataset: options.Dataset = _D.dataset,
    data: options.DataFolder = None,
    head: options.Head = _D.head,
    sampler: options.Sampler = _D.sampler,
    epochs: options.Epochs = _D.epochs,
    bs: options.BatchSize = _D.bs,
    lr: options.LearningRate = _D.lr,
    size: options.Size = _D.size,
    device: options.Device = _D.device,
    print_commands: Annotated[
        bool,
        typer.Option(
            help="Print each cell as a standalone `cxrlt run` command (trained cells first) "
            "and exit; run them anywhere, then `cxrlt sweep --collect` with the same grid."
        ),
    ] = False,
    collect: Annotated[
        bool, typer.Option(help="Run nothing: tabulate the cells already complete.")
    ] = False,
) -> None:
    """Run a grid of cells (skipping those complete) and write the comparison: cells.csv,
    summary.csv / .md (mean ± sd over seeds, head / medium / tail mAP) and an mAP plot."""
    from cxrlt.sweep import Sweep, run_sweep

    shared = RunOptions(
        dataset=dataset,
        data=data,
        head=head,
        sampler=sampler,
        epochs=epochs,
        bs=bs,
        lr=lr,
        size=size,
        device=device,
    )
    grid = Sweep.from_text(out, loss, arch, post, seeds, shared)
    if collect:
        grid.require_collectable()
    if print_commands or collect:
        grid.check()
        grid.save()
    if print_commands:
        _print_commands(grid)
        return
    failed = [] if collect else run_sweep(grid, console)
    _write_and_show(grid.folder)
    if failed:
        raise CxrltError(
            f"{len(failed)} cells failed; the others are in the tables:\n" + "\n".join(failed)
        )


def _print_commands(grid: Sweep) -> None:
    trained = [cell for cell in grid.runs if cell.base is None]
    derived = [cell for cell in grid.runs if cell.base is not None]
    for cell in trained:
        print(grid.command(cell))
    if derived:
        print("# then, once the runs they start from (--from-run) are complete:")
        for cell in derived:
            print(grid.command(cell))


def _write_and_show(folder: Path) -> None:
    """Write the tables and plot; show the means (the markdown file has every spread)."""
    import numpy as np
    from rich.table import Table

    from cxrlt.outputs.tables import print_table
    from cxrlt.sweep import FACTORS, SCORES, write_results

    summary, notes, written = write_results(folder)
    table = Table(title=f"Sweep {folder}: validation, mean over seeds")
    for column in (*FACTORS, "seeds", "mAP", "sd", "mAUC", "mF1", "ECE", "head", "medium", "tail"):
        table.add_column(column, justify="left" if column in FACTORS else "right")
    for _, row in summary.iterrows():
        means = [row[f"{score}_mean"] for score in SCORES]
        numbers = [means[0], row["mAP_std"], *means[1:]]
        cells = ["—" if np.isnan(value) else f"{value:.3f}" for value in numbers]
        table.add_row(row.loss, row.arch, row.post, str(row.seeds), *cells)
    print_table(console, table)
    for note in notes:
        console.print(note, highlight=False)
    console.print(f"Written {', '.join(str(path) for path in written)}")
