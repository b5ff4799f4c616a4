"""``cxrlt report`` and ``cxrlt compare``: a finished run scored again, and runs side by side.

Both read only the run directories (no model, no data set), and import pandas and matplotlib
inside the commands so that ``cxrlt --help`` stays fast.
"""

from __future__ import annotations

import json as json_text
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cxrlt.cli.app import app, friendly_errors
from cxrlt.cli.output import Json, Quiet, command_console, print_json
from cxrlt.errors import CxrltError

if TYPE_CHECKING:
    import pandas as pd


Groups = Annotated[
    str,
    typer.Option(help="Head/medium/tail rule: 'thirds' of the classes, or count 'bounds'."),
]
Bounds = Annotated[
    str,
    typer.Option(help="With --groups bounds: 'low,high' training positives (tail < low)."),
]


def parse_bounds(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.split(","))
    except ValueError:
        raise CxrltError(f"--bounds takes two whole numbers 'low,high', got {text!r}.") from None
    return low, high


@app.command()
@friendly_errors
def report(
    run: Annotated[Path, typer.Argument(help="Folder of a finished run.")],
    classes: Annotated[
        str | None,
        typer.Option(
            help="PR curves of these classes, comma-separated (default: the 3 rarest "
            "and 3 most frequent with validation positives)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the plots (default: RUN/plots).")
    ] = None,
    groups: Groups = "thirds",
    bounds: Bounds = "100,1000",
    explain: Annotated[
        int,
        typer.Option(
            help="Add a grid of Grad-CAM explanations (explanations.png): the N rarest classes "
            "in training, each with its top-scoring validation images (needs the run's data)."
        ),
    ] = 0,
    device: Annotated[
        str, typer.Option(help="With --explain: auto, cpu, cuda or cuda:N.")
    ] = "auto",
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Score a run again from its predictions: per-class table, group means (each with its 95%
    interval over resampled patients) and PNG plots; with --explain, Grad-CAM explanations."""
    from cxrlt.outputs import plots
    from cxrlt.outputs.report import print_report, read_run
    from cxrlt.outputs.run_dir import check_output_file
    from cxrlt.outputs.run_schema import PROB

    results = read_run(run)
    folder = out or run / "plots"
    check_output_file(folder / "ap_by_train_count.png")  # before the resampling, not after
    if explain < 0:
        raise CxrltError(f"--explain takes a number of classes (0 for none), got {explain}.")
    if explain:
        from cxrlt.explain import explainable_run

        explainable_run(run)  # an ensemble or evaluation is refused before the resampling
    grouping = {"groups": groups, "bounds": parse_bounds(bounds)}
    main = results.evaluate(results.final, **grouping)  # the run's own figures
    uncalibrated = (
        results.evaluate(PROB, intervals=False, **grouping) if results.final != PROB else None
    )
    evaluation = results.config.evaluation
    scored_on = f"{evaluation.dataset} (every labelled image)" if evaluation else "validation"
    console = command_console(json=json, quiet=quiet)
    print_report(
        console, main, results.train_counts, uncalibrated=uncalibrated, scored_on=scored_on
    )
    if results.patient_note:
        console.print(f"[yellow]Note:[/yellow] {results.patient_note}.")
    chosen = [c.strip() for c in classes.split(",")] if classes else None
    chosen = plots.curve_classes(main.per_class, results.train_counts, chosen)
    written = [
        plots.ap_by_train_count(
            main.per_class, results.train_counts, folder / "ap_by_train_count.png", main.groups
        ),
        plots.precision_recall_curves(
            results.targets,
            results.logits,
            main.per_class,
            chosen,
            results.train_counts,
            folder / "precision_recall.png",
        ),
        plots.reliability_diagram(results.probs, results.targets, folder / "reliability.png"),
    ]
    if explain:
        from cxrlt.explain import GRID, explanation_grid
        from cxrlt.workflows.setup import pick_device

        written.append(
            explanation_grid(run, folder / GRID, n_classes=explain, device=pick_device(device))
        )
    console.print(f"Plots written to {folder}: {', '.join(p.name for p in written)}")
    if json:
        from cxrlt.outputs.run_schema import metrics_summary, per_class_table

        print_json(
            {
                "run": str(run),
                "scored_on": scored_on,
                "metrics": metrics_summary(main),
                "uncalibrated": None if uncalibrated is None else metrics_summary(uncalibrated),
                "per_class": _records(per_class_table(main).reset_index()),
                "plots": [str(path) for path in written],
                "notes": [results.patient_note] if results.patient_note else [],
            }
        )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as JSON objects (numpy numbers made plain, NaN null)."""
    return json_text.loads(frame.to_json(orient="records"))


@app.command()
@friendly_errors
def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Folders of finished runs, or of sweeps (their cells).")
    ],
    out: Annotated[
        Path, typer.Option(help="Write OUT.csv and OUT.md (a path without suffix).")
    ] = Path("comparison"),
    groups: Groups = "thirds",
    bounds: Bounds = "100,1000",
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Runs side by side: settings, mAP, mAUC, mF1, ECE and head/medium/tail mAP with 95%
    intervals, and each run's paired difference from the first when scored on the same images."""
    from cxrlt.io import write_text, write_with
    from cxrlt.outputs.report import compare_runs, comparison_markdown, print_comparison
    from cxrlt.outputs.run_dir import check_output_file
    from cxrlt.sweep import with_sweep_cells

    for suffix in (".csv", ".md"):  # before the resampling, not after
        check_output_file(out.with_name(out.name + suffix))
    frame, notes = compare_runs(with_sweep_cells(runs), groups=groups, bounds=parse_bounds(bounds))
    console = command_console(json=json, quiet=quiet)
    print_comparison(console, frame, notes)
    csv = write_with(out.with_name(out.name + ".csv"), lambda f: frame.to_csv(f, index=False))
    md = write_text(out.with_name(out.name + ".md"), comparison_markdown(frame, notes))
    console.print(f"Written {csv.resolve()} and {md.resolve()} (--out sets where)")
    if json:
        print_json({"runs": _records(frame), "notes": notes, "written": [csv, md]})
