"""Output that survives logs: one progress line per epoch off a terminal, and tables whose
cells (numbers above all) are never cut or folded, whatever the width."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from fastai.callback.progress import ProgressCallback
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.outputs.report import COMPARED, compare_runs, print_comparison, print_table
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.training import learner as learner_module
from cxrlt.training.progress import EpochLines, format_line
from tests.unit.outputs.test_report import CLASSES, make_run

EPOCH_LINE = re.compile(r"^(\d+) +(\d+\.\d{6}) +(\d+\.\d{6}) +(\d+\.\d{6}) +\d\d:\d\d$")
NUMBER = re.compile(r"\d+\.\d+")


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory) -> tuple[str, Path]:
    """A 2-epoch run whose output goes to a pipe (CliRunner's stdout is no terminal)."""
    out = tmp_path_factory.mktemp("log") / "run"
    args = ["run", "--dataset", TINY_DATA, "--size", "32", "--epochs", "2", "--bs", "16"]
    result = CliRunner().invoke(app, [*args, "--no-pretrained", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.output, out


@pytest.mark.slow
def test_a_piped_run_prints_one_line_per_epoch_and_no_carriage_return(piped_run):
    output, out = piped_run
    assert "\r" not in output
    lines = [m for line in output.splitlines() if (m := EPOCH_LINE.match(line))]
    assert [m[1] for m in lines] == ["0", "1"]
    assert output.count("epoch       train_loss  valid_loss  mAP") == 1
    log = pd.read_csv(out / "log.csv")  # the run log still gets every epoch through the logger
    assert log["epoch"].tolist() == [0, 1]
    assert [float(m[2]) for m in lines] == pytest.approx(log["train_loss"].tolist(), abs=1e-6)


@pytest.mark.slow
def test_a_piped_run_prints_the_per_class_table_whole(piped_run):
    output, out = piped_run
    assert "…" not in output
    config = json.loads((out / "config.json").read_text())
    table_rows = [line for line in output.splitlines() if line.startswith("│ ")]
    for name in config["data"]["classes"]:  # one row per class, its name whole on it
        assert sum(line.startswith(f"│ {name} ") for line in table_rows) == 1, name


def test_fastai_bars_stay_in_a_terminal_and_give_way_to_lines_elsewhere(monkeypatch):
    from cxrlt.data.loaders import cxr_dataloaders

    dls = cxr_dataloaders(TINY_DATA, size=32, bs=16)
    for terminal, kind in ((True, ProgressCallback), (False, EpochLines)):
        monkeypatch.setattr(learner_module, "stdout_is_terminal", lambda t=terminal: t)
        learn = learner_module.cxr_learner(dls, pretrained=False)
        shown = [cb for cb in learn.cbs if isinstance(cb, ProgressCallback)]
        assert [type(cb) for cb in shown] == [kind]


def test_epoch_line_keeps_fastai_number_format():
    assert format_line([3, 0.5, 0.25, "00:02"]) == "3           0.500000    0.250000    00:02"


def numbers_whole(text: str, expected: list[str]) -> list[str]:
    """The expected numbers that do not appear whole among the text's numbers."""
    found = set(NUMBER.findall(text))
    return [number for number in expected if number not in found]


def comparison_numbers(frame: pd.DataFrame) -> list[str]:
    """Every value and interval end of the comparison, as the table writes them."""
    columns = [f"{c}{end}" for c in COMPARED for end in ("", "_low", "_high")]
    return [f"{v:.3f}" for v in frame[columns].to_numpy().ravel() if pd.notna(v)]


@pytest.fixture
def compared(tmp_path) -> tuple[pd.DataFrame, list[str]]:
    runs = [make_run(tmp_path / name, seed=seed) for seed, name in enumerate(("bce", "focal"))]
    return compare_runs(runs)


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("width", [40, 80, 250])
def test_compare_never_cuts_a_number_at_any_width(compared, terminal, width):
    frame, notes = compared
    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    print_comparison(console, frame, notes)
    text = console.file.getvalue()
    assert numbers_whole(text, comparison_numbers(frame)) == []
    assert "…" not in text
    if not terminal:  # a log: one line per run (its first is in the main table), all numbers
        for _, row in frame.iterrows():
            line = next(line for line in text.splitlines() if line.startswith(f"│ {row.run} "))
            assert numbers_whole(line, comparison_numbers(frame[frame.run == row.run])) == []


def test_compare_command_in_40_columns_writes_every_number_whole(tmp_path):
    runs = [make_run(tmp_path / name, seed=seed) for seed, name in enumerate(("bce", "focal"))]
    result = CliRunner().invoke(
        app, ["compare", *map(str, runs), "--out", str(tmp_path / "c")], env={"COLUMNS": "40"}
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "c.csv")
    assert numbers_whole(result.output, comparison_numbers(frame)) == []


def test_report_command_in_40_columns_keeps_class_names_and_numbers_whole(tmp_path):
    run = make_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["report", str(run)], env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    per_class = [line for line in result.output.splitlines() if line.startswith("│ finding")]
    assert [line.split("│")[1].strip() for line in per_class] == CLASSES
    assert all(len(NUMBER.findall(line)) >= 8 for line in per_class[:-1])  # AP..ECE, intervals


def test_a_terminal_too_narrow_wraps_cells_between_words_only():
    table = Table(title="t")
    table.add_column("name")
    table.add_column("value", justify="right")
    table.add_row("a long class name", "0.123 [0.045, 0.678]")
    console = Console(file=io.StringIO(), width=20, force_terminal=True, color_system=None)
    print_table(console, table)
    text = console.file.getvalue()
    cells = [c.strip() for line in text.splitlines() for c in line.split("│")[1:-1]]
    words = {word for cell in cells for word in cell.split()}
    assert {"long", "class", "name", "0.123", "[0.045,", "0.678]"} <= words
    assert max(len(line) for line in text.splitlines()) < len("a long class name") + 26
