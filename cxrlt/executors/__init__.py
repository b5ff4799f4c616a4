"""How a sweep's cells run: one after another here, or on an engine users already operate.

Every executor keeps the sequential semantics: a cell already complete is skipped, an
interrupted one resumes from its checkpoint, a failed cell is reported and does not stop the
others, and a post-training cell runs only once its trained cell is complete (else it is
"not run"). All of that lives in :func:`run_cell`, which runs one cell in the current
process, wherever that process is (a Ray worker, a Slurm job); an executor only decides where
and when each cell's :func:`run_cell` runs, and reports the outcomes as they come.
Executors are a registry kind (``--executor NAME:params``), so a plugin can add another.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rich.console import Console

from cxrlt.errors import CxrltError
from cxrlt.options import RunOptions
from cxrlt.outputs.run_dir import RunDir
from cxrlt.sweep import Cell, Sweep, cell_state

Status = Literal["skipped", "done", "resumed", "failed", "not run", "submitted"]
RunCell = Callable[[RunOptions, Console, bool], Any]


@dataclass(frozen=True)
class CellOutcome:
    """What became of one cell: ``skipped`` (complete already), ``done``, ``resumed``,
    ``failed`` (with the error), ``not run`` (its trained cell is not complete) or
    ``submitted`` (as the job ``job``, which goes on after the sweep returns)."""

    cell: Cell
    status: Status
    seconds: float = 0.0
    mAP: float | None = None
    error: str = ""
    job: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "not run")

    def line(self) -> str:
        """The outcome as the sweep reports it (rich markup)."""
        if self.status == "skipped":
            return "complete, skipped"
        if self.status == "not run":
            return "not run (its trained cell failed)"
        if self.status == "failed":
            return f"[red]failed[/red] ({self.error})"
        if self.status == "submitted":
            return f"submitted as job {self.job}"
        return f"{self.status} in {self.seconds:.0f} s, mAP {self.mAP:.3f}"

    def failure(self) -> str:
        """The line of the sweep's closing list of failures."""
        if self.status == "not run":
            assert self.cell.base is not None
            return f"{self.cell.name}: not run, its trained cell {self.cell.base.name} failed"
        return f"{self.cell.name}: {self.error}"


def run_pipeline(options: RunOptions, console: Console, resume: bool) -> Any:
    """A cell's run: ``cxrlt run`` with its options (the default ``run`` of the executors;
    tests pass stand-ins)."""
    from cxrlt.workflows.run import run

    return run(options, console, resume=resume)


def run_cell(sweep: Sweep, cell: Cell, run: RunCell = run_pipeline) -> CellOutcome:
    """Run ``cell`` in this process unless it is complete: resumed when interrupted, not run
    when its trained cell is not complete. Its output is appended to ``logs/<cell>.txt``
    beside the cells (outside the cell's folder, which a rerun of the cell clears). A
    :class:`CxrltError` (a NaN loss, a model too large) is the cell's failure, not the
    sweep's."""
    state = cell_state(sweep.path(cell))
    if state == "complete":
        return CellOutcome(cell, "skipped")
    if cell.base is not None and cell_state(sweep.path(cell.base)) != "complete":
        return CellOutcome(cell, "not run")
    resume = state == "interrupted" and cell.base is None
    options = sweep.cell_options(cell)
    if state != "absent" and not resume:
        options = dataclasses.replace(options, overwrite=True)  # a start that left no state
    start = time.perf_counter()
    try:
        with open(sweep.log_file(cell), "a", encoding="utf-8") as log, redirect_stdout(log):
            run(options, Console(file=log, width=120), resume)
    except CxrltError as error:
        return CellOutcome(cell, "failed", time.perf_counter() - start, error=str(error))
    mAP = RunDir(sweep.path(cell), check=False).read_metrics()["mAP"]
    status: Status = "resumed" if resume else "done"
    return CellOutcome(cell, status, time.perf_counter() - start, mAP)


class Executor(Protocol):
    """Runs a checked, saved sweep's cells (``sweep.runs``, trained cells before the cells
    that post-train them) and returns one outcome per cell; ``report`` is called with each
    outcome as it comes, from the process that called :meth:`run`."""

    def run(
        self, sweep: Sweep, report: Callable[[CellOutcome], None], run: RunCell = run_pipeline
    ) -> list[CellOutcome]: ...


class Sequential:
    """The cells one after another in this process, in order."""

    def run(
        self, sweep: Sweep, report: Callable[[CellOutcome], None], run: RunCell = run_pipeline
    ) -> list[CellOutcome]:
        outcomes = []
        for cell in sweep.runs:
            outcomes.append(run_cell(sweep, cell, run))
            report(outcomes[-1])
        return outcomes


def run_sweep(
    sweep: Sweep,
    console: Console,
    *,
    executor: Executor | None = None,
    run: RunCell = run_pipeline,
) -> list[str]:
    """Check every cell, save the manifest, run the cells not yet complete on ``executor``
    (sequential by default) and return one line per cell that failed or was not run."""
    outcomes = run_sweep_cells(sweep, console, executor=executor, run=run)
    return [outcome.failure() for outcome in outcomes if outcome.failed]


def run_sweep_cells(
    sweep: Sweep,
    console: Console,
    *,
    executor: Executor | None = None,
    run: RunCell = run_pipeline,
) -> list[CellOutcome]:
    """:func:`run_sweep`, returning the outcomes in the sweep's order (a cell submitted and not
    waited for is ``submitted``)."""
    sweep.check()
    sweep.save()
    runs = sweep.runs
    numbers = {cell: number for number, cell in enumerate(runs, 1)}

    def report(outcome: CellOutcome) -> None:
        label = f"[{numbers[outcome.cell]}/{len(runs)}] {outcome.cell.name}"
        console.print(f"{label}: {outcome.line()}", highlight=False)

    outcomes = (executor or Sequential()).run(sweep, report, run)
    by_cell = {outcome.cell: outcome for outcome in outcomes}
    return [by_cell[cell] for cell in runs if cell in by_cell]
