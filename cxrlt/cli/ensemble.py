"""``cxrlt ensemble``: several finished runs averaged into a new run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.errors import CxrltError


def parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise CxrltError(f"--weights takes numbers separated by commas, got {text!r}.") from None


@app.command()
@friendly_errors
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Folders of finished runs (two or more).")],
    out: Annotated[Path, typer.Option(help="Folder of the ensemble run.")],
    merge: Annotated[
        str, typer.Option(help="Average 'logit's (default) or 'prob'abilities.")
    ] = "logit",
    weights: Annotated[
        str | None, typer.Option(help="One weight per run, e.g. '2,1' (default: equal).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in --out.")] = False,
) -> None:
    """Merge runs validated on the same split; the result works with report, compare and
    predict like any run."""
    from cxrlt.ensemble import ensemble_runs
    from cxrlt.outputs.report import print_report

    run_dir, report = ensemble_runs(
        runs, out, merge=merge, weights=parse_weights(weights), overwrite=overwrite
    )
    print_report(console, report, run_dir.read_config().data.train_counts)
    console.print(f"Ensemble written to [bold]{run_dir.path}[/bold]")
