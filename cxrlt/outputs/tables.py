"""Rich tables printed whole: no number cut, in a terminal or a log."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table

_UNBOUNDED = 100_000  # a width no table reaches, to measure a table's one-line-per-row width


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every cell whole, however narrow the console.

    Rich fits a table to the console by folding and cutting cells (``0.4…``), which loses
    numbers. Here, in a log or a pipe, every row stays on one line, so logs can be searched;
    in a terminal too narrow for that, cells wrap between words only, and the table runs
    past the terminal's edge when even that does not fit.
    """
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    width = _fit_columns(console, table, natural) if console.is_terminal else natural
    console.print(Segments(console.render(table, console.options.update_width(width))), crop=False)


def _fit_columns(console: Console, table: Table, natural: int) -> int:
    """Fix each column's width to fit the console, never below its longest word; returns
    the table's width."""
    ranges = []
    for column in table.columns:
        cells = [
            Measurement.get(console, console.options, c) for c in (column.header, *column.cells)
        ]
        ranges.append((max(m.minimum for m in cells), max(m.maximum for m in cells)))
    frame = natural - sum(high for _, high in ranges)  # borders and padding
    least = sum(low for low, _ in ranges)
    spare = max(console.width - frame - least, 0)
    gaps = sum(high - low for low, high in ranges)  # > spare, as the table does not fit
    for column, (low, high) in zip(table.columns, ranges, strict=True):
        column.width = low + spare * (high - low) // gaps
    return frame + sum(column.width for column in table.columns)
