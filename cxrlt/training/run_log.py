"""The per-epoch CSV log, rewritten whole and atomically after every epoch, and continued
rather than restarted when a run resumes."""

from __future__ import annotations

from typing import Any

from fastai.callback.core import Callback

from cxrlt.io import write_text
from cxrlt.training.events import predicting


class RunLog(Callback):
    """The header and one line per epoch, as fastai's ``CSVLogger`` writes them; each epoch
    replaces the file (an interrupted write leaves the previous one whole, not half a line).
    With ``keep_epochs`` an existing log keeps its header and that many epoch lines, byte for
    byte (those the checkpoint covers: a line written after it is dropped), and goes on."""

    order = 60  # fastai's CSVLogger's: after the Recorder has the epoch's values
    during_post_training = False  # the log holds the main training's epochs

    def __init__(self, fname: str, keep_epochs: int | None = None) -> None:
        self.fname, self.keep_epochs = fname, keep_epochs
        self.lines: list[str] = []

    def before_fit(self) -> None:
        if predicting(self.learn):
            return
        path = self.path / self.fname
        if self.keep_epochs is not None and path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            self.lines = lines[: 1 + self.keep_epochs]
        else:
            self.lines = [",".join(self.recorder.metric_names) + "\n"]
        self.keep_epochs = None  # continued once; a later fit starts its own log
        self._write()
        self.old_logger, self.learn.logger = self.logger, self._log_epoch

    def _log_epoch(self, log: list[Any]) -> None:
        self.lines.append(",".join(str(value) for value in log) + "\n")
        self._write()
        self.old_logger(log)

    def after_fit(self) -> None:
        if not predicting(self.learn):
            self.learn.logger = self.old_logger

    def _write(self) -> None:
        write_text(self.path / self.fname, "".join(self.lines))
