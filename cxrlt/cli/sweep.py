"""``cxrlt sweep``: a grid of losses x backbones x post-training x seeds, and its table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cxrlt.cli.app import app, friendly_errors
from cxrlt.cli.options import with_run_options
from cxrlt.cli.output import Json, Quiet, command_console, command_stdout, print_json
from cxrlt.errors import CxrltError
from cxrlt.options import PER_RUN_OPTIONS, RUN_OPTIONS, RunOptions, flag, read_config_file

if TYPE_CHECKING:
    from rich.console import Console

    from cxrlt.sweep import Sweep

_D = RunOptions()
# The grid's factors: each a comma-separated list of alternatives. The run options that name
# one run (seed, out, ...) are set per cell; every other run option is shared by the cells.
_GRID = {
    "loss": (_D.loss, "Losses to compare, e.g. 'bce,asl,ldam-drw'."),
    "arch": (_D.arch, "Backbones, e.g. 'resnet18,convnext_atto'."),
    "post": (
        "none",
        "Post-training alternatives: 'none' or steps joined by '+', e.g. "
        "'none,crt,crt+tta+temp-scale'. Each starts from its 'none' cell's trained model.",
    ),
}
_SHARED = [field.name for field in RUN_OPTIONS if field.name not in PER_RUN_OPTIONS]


@app.command()
@friendly_errors
@with_run_options(_SHARED, meaning=_GRID)
def sweep(
    given: dict[str, Any],
    seeds: Annotated[int, typer.Option(help="Seeds per cell: 0, 1, ... seeds-1.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder of the sweep, one run folder per cell.")] = (
        Path("sweep")
    ),
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML or JSON file of run options shared by the cells (its loss, arch and post "
            "are the grid's alternatives); options on the command line override it."
        ),
    ] = None,
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
    executor: Annotated[
        str,
        typer.Option(
            help="Where the cells run (`cxrlt list executors`): 'sequential', one after "
            "another here; 'ray' in parallel, e.g. 'ray:gpus=0.5' or 'ray:address=auto'; "
            "'slurm' as jobs, e.g. 'slurm:partition=gpu,gpus=1,time=240'."
        ),
    ] = "sequential",
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Run a grid of cells (skipping those complete) and write the comparison: cells.csv,
    summary.csv / .md (mean ± sd over seeds, head / medium / tail mAP) and an mAP plot."""
    from cxrlt.executors import run_sweep_cells
    from cxrlt.registry import resolve
    from cxrlt.sweep import Sweep

    engine = resolve("executors", executor)
    values = {**_file_options(config), **given}
    grid_values = {name: values.pop(name, default) for name, (default, _) in _GRID.items()}
    grid = Sweep.from_text(out, **grid_values, seeds=seeds, options=RunOptions(**values))
    if collect:
        grid.require_collectable()
    if print_commands or collect:
        grid.check()
        grid.save()
    if print_commands:
        _print_commands(grid)
        return
    console = command_console(json=json, quiet=quiet)
    with command_stdout(json=json, quiet=quiet):
        outcomes = [] if collect else run_sweep_cells(grid, console, executor=engine.build())
        # cells submitted and not waited for: the tables come with --collect once they end
        submitted = {o.cell.name: o.job for o in outcomes if o.status == "submitted"}
        rows = [] if submitted else _write_and_show(grid.folder, console)
        if submitted:
            console.print(_NOT_WAITED, highlight=False)
    failed = [outcome.failure() for outcome in outcomes if outcome.failed]
    if json:
        result = {"submitted": submitted} if submitted else {"rows": rows}
        print_json({"sweep": str(grid.folder), **result, "failed": failed})
    elif quiet and submitted:  # the job ids, the one thing to keep
        print("\n".join(f"{job} {name}" for name, job in submitted.items()))
    if failed:
        raise CxrltError(
            f"{len(failed)} cells failed; the others are in the tables:\n" + "\n".join(failed)
        )


_NOT_WAITED = (
    "The jobs go on without this command (`squeue --me` follows them). Once they have ended, "
    "run the same `cxrlt sweep` command with --collect to write the tables."
)


def _file_options(config: Path | None) -> dict[str, Any]:
    """The run options of the ``--config`` file; those a sweep sets per cell are refused."""
    if config is None:
        return {}
    values = read_config_file(config)
    per_cell = [flag(name) for name in values if name in PER_RUN_OPTIONS]
    if per_cell:
        raise CxrltError(
            f"{config}: a sweep sets {', '.join(per_cell)} per cell; remove them from the file "
            "(give the seeds with --seeds and the sweep's folder with --out)."
        )
    return values


def _print_commands(grid: Sweep) -> None:
    trained = [cell for cell in grid.runs if cell.base is None]
    derived = [cell for cell in grid.runs if cell.base is not None]
    for cell in trained:
        print(grid.command(cell))
    if derived:
        print("# then, once the runs they start from (--from-run) are complete:")
        for cell in derived:
            print(grid.command(cell))


def _write_and_show(folder: Path, console: Console) -> list[dict[str, Any]]:
    """Write the tables and plot; show the means (the markdown file has every spread); returns
    the summary's rows."""
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
    return summary.to_dict("records")
