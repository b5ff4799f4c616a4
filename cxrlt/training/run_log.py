"""The per-epoch CSV log, continued rather than restarted when a run resumes."""

from __future__ import annotations

from fastai.callback.progress import CSVLogger

from cxrlt.training.events import predicting


class RunLog(CSVLogger):
    """fastai's CSV log; with ``keep_epochs`` it keeps the header and that many epoch lines
    (those the checkpoint covers: a line written after it is dropped) and appends to them."""

    def __init__(self, fname: str, keep_epochs: int | None = None) -> None:
        super().__init__(fname=fname)
        self.keep_epochs = keep_epochs

    def before_fit(self) -> None:
        path = self.path / self.fname
        if self.keep_epochs is None or not path.is_file() or predicting(self.learn):
            return super().before_fit()
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[: 1 + self.keep_epochs]), encoding="utf-8")
        self.keep_epochs = None  # continued once; a later fit starts its own log
        self.file = path.open("a")
        self.old_logger, self.learn.logger = self.logger, self._write_line
