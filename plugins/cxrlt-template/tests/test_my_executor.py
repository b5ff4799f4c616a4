from types import SimpleNamespace

import cxrlt_template.executor as module
import pytest
from cxrlt_template.executor import MyExecutor

from cxrlt import CellOutcome
from cxrlt.testing import check_entry


def test_pauses_after_each_cell_that_ran(monkeypatch):
    statuses = {"a": "done", "b": "failed", "c": "skipped", "d": "not run", "e": "resumed"}
    monkeypatch.setattr(
        module, "run_cell", lambda sweep, cell, run: CellOutcome(cell, statuses[cell])
    )
    pauses = []
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=pauses.append))
    reported = []
    outcomes = MyExecutor(pause=2.0).run(SimpleNamespace(runs=list(statuses)), reported.append)
    assert [(o.cell, o.status) for o in outcomes] == list(statuses.items())
    assert reported == outcomes
    assert pauses == [2.0, 2.0]  # before b and c; none after c (skipped) or d (not run)


def test_rejects_a_negative_pause():
    with pytest.raises(ValueError, match="pause must be at least 0"):
        MyExecutor(pause=-1)


def test_keeps_the_executor_contract():
    """Each cell not yet complete runs once, failures and their post cells are reported,
    every outcome is reported once and returned."""
    check_entry("executors", "my-executor:pause=0")
