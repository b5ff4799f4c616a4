"""The plugin's sweep executor: where and when ``cxrlt sweep``'s cells run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cxrlt import CellOutcome, Executor, run_cell, run_pipeline


class MyExecutor(Executor):
    """The cells one after another in this process, with a pause of ``pause`` seconds after
    each cell that ran (not after one skipped as complete or not run): a break between long
    trainings for the other users of a shared machine.

    cxrlt calls ``run(sweep, report, run)`` with a checked, saved sweep. Run each cell of
    ``sweep.runs`` (trained cells come before the cells that post-train them) through
    ``run_cell``, which skips a complete cell, resumes an interrupted one, turns a failure into
    an outcome and writes the cell's log; hand it ``run`` untouched (tests pass a stand-in).
    Call ``report`` with each outcome as it comes, from this process, and return them all.
    """

    def __init__(self, *, pause: float = 60.0) -> None:
        if pause < 0:
            raise ValueError(f"pause must be at least 0 seconds, got {pause}")
        self.pause = pause

    def run(
        self,
        sweep: Any,
        report: Callable[[CellOutcome], None],
        run: Callable[..., Any] = run_pipeline,
    ) -> list[CellOutcome]:
        outcomes: list[CellOutcome] = []
        for cell in sweep.runs:
            if outcomes and outcomes[-1].status not in ("skipped", "not run"):
                time.sleep(self.pause)
            outcomes.append(run_cell(sweep, cell, run))
            report(outcomes[-1])
        return outcomes
