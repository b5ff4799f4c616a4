"""Training progress that survives logs: one line per epoch when stdout is no terminal.

fastai's progress bars redraw themselves with carriage returns many times a second. A terminal
shows one bar; CI logs, ``nohup.out`` and a scheduler's log file keep every redraw. Written to
such a file, progress is fastai's table of results alone, one flushed line per epoch, so that
``tail -f`` shows each epoch as it ends.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from fastai.callback.progress import ProgressCallback
from fastai.imports import noop

COLUMN_WIDTH = 10  # fastai's table: 'train_loss' and a float with 6 decimals fit


def stdout_is_terminal() -> bool:
    """Whether stdout is an interactive terminal, where progress bars redraw in place."""
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def format_line(values: Sequence[Any]) -> str:
    """One row of the table: floats with 6 decimals, as fastai's table writes them."""
    cells = [f"{v:.6f}" if isinstance(v, float) else str(v) for v in values]
    return "  ".join(cell.ljust(COLUMN_WIDTH) for cell in cells).rstrip()


class EpochLines(ProgressCallback):
    """fastai's progress without the bars: the header, then one line per epoch (epoch, train
    and valid loss, metrics, time), flushed as it is written.

    A subclass of ProgressCallback, so code that keeps or removes the progress display (post
    steps, distributed ranks) treats it alike.
    """

    def before_fit(self) -> None:
        self.old_logger = self.learn.logger
        # fastai's validation and predictions turn the master bar (and logging) off: no table
        if self.create_mbar and self.learn.logger != noop:
            self.learn.logger = self._write_stats
            self._write_stats(self.recorder.metric_names)

    def _no_bar(self) -> None:
        """Nothing to draw between epochs."""

    before_epoch = before_train = before_validate = _no_bar
    after_train = after_validate = after_batch = _no_bar

    def after_fit(self) -> None:
        self.learn.logger = self.old_logger

    def _write_stats(self, log: Sequence[Any]) -> None:
        print(format_line(log), flush=True)
