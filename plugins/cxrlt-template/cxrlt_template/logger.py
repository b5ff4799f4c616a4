"""Template example of an experiment tracker: one JSON line per epoch and one at the end."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrlt import TrackedRun, Tracker


class JsonLinesTracker(Tracker):
    """Appends the run's start, each epoch's values and its final metrics to a JSON-lines file
    (relative to the current folder), for a log shipper to pick up."""

    def __init__(self, *, path: str = "cxrlt-epochs.jsonl") -> None:
        super().__init__()
        self.path = Path(path)

    def start(self, run: TrackedRun) -> None:
        self._write({"run": run.name, "params": dict(run.params), "tags": dict(run.tags)})

    def log_epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        self._write({"epoch": epoch, **values})

    def finish(self, metrics: Mapping[str, float], status: str) -> None:
        self._write({"status": status, **metrics})

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
