"""Reports for people: the data, a run's scores (recomputed from the files it left), and runs
side by side.

A run is scored again from ``valid_predictions.csv``: ``target:<class>`` columns for the labels,
``logit:<class>`` for ranking (AP, AUC), ``prob:<class>`` and, when a calibrator wrote them,
``calibrated:<class>`` for the thresholded and calibration metrics (F1, ECE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from cxrlt.data.labels import imbalance_ratio
from cxrlt.errors import CxrltError
from cxrlt.evaluation.groups import GROUPS
from cxrlt.evaluation.metrics import Report, evaluate
from cxrlt.io import read_json
from cxrlt.outputs.run_dir import CONFIG, METRICS, PREDICTIONS, RunDir

TARGET, LOGIT, PREDICTED = "target", "logit", "predicted"
PROBABILITIES = ("prob", "calibrated")  # the second only when a calibrator wrote it
SETTINGS = ("run", "loss", "arch", "epochs")
COMPARED = ("mAP", "mAUC", "mF1", "ECE", "mAP_head", "mAP_medium", "mAP_tail")


def _fmt(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.3f}"


def print_data_summary(console: Console, dls: Any) -> None:
    counts = dls.class_counts
    console.print(
        f"[bold]{dls.data.name}[/bold]: {len(dls.data)} images, {dls.n_train} train / "
        f"{int(dls.is_valid.sum())} valid (grouped by patient, stratified), "
        f"{len(dls.classes)} classes, "
        f"train imbalance {imbalance_ratio(dls.data.labels[~dls.is_valid]):.0f}:1 "
        f"(most {counts.max()}, least {counts[counts > 0].min()} positives)"
    )
    for note in dls.data.notes:
        console.print(f"[yellow]Note:[/yellow] {note}")
    if len(dls.skipped):
        console.print(
            f"[yellow]Skipped {dls.skipped['ImageID'].nunique()} bad rows[/yellow] "
            "(listed in the run directory's skipped.csv)."
        )


def _threshold_label(report: Report) -> str:
    thresholds = report.per_class["threshold"]
    if thresholds.isna().all():
        return " (the run's thresholds)"
    unique = thresholds.unique()
    return f"@{unique[0]:g}" if len(unique) == 1 else " (per-class thresholds)"


def print_report(
    console: Console,
    report: Report,
    train_counts: Sequence[int],
    *,
    calibrated: Report | None = None,
) -> None:
    """The per-class table, the overall means and, when grouped, the head / medium / tail means.

    ``calibrated`` (the same predictions after calibration) adds its F1 and ECE beside them.
    """
    at = _threshold_label(report)
    columns = ["class", "train n", "valid n", "AP", "AUC", f"F1{at}", "ECE"]
    if report.groups:
        columns.insert(1, "group")
    if calibrated:
        columns += ["F1 calibrated", "ECE calibrated"]
    table = Table(title="Validation metrics per class")
    for column in columns:
        table.add_column(column, justify="left" if column in ("class", "group") else "right")
    for (name, row), n_train in zip(report.per_class.iterrows(), train_counts, strict=True):
        cells = [name, str(n_train), str(int(row.n_pos))]
        cells += [_fmt(row[c]) for c in ("AP", "AUC", "F1", "ECE")]
        if report.groups:
            cells.insert(1, report.groups.group[name])
        if calibrated:
            cells += [_fmt(calibrated.per_class.loc[name, c]) for c in ("F1", "ECE")]
        table.add_row(*cells)
    console.print(table)
    o = report.overall
    console.print(
        f"[bold]mAP {o['mAP']:.3f}[/bold] (chance level {o['mAP_chance']:.3f}), "
        f"mAUC {o['mAUC']:.3f}, mF1{at} {o['mF1']:.3f} over {o['n_classes_scored']} classes "
        f"with validation positives, {o['n_images']} images; ECE {o['ECE']:.3f} (15 bins, "
        "all image-class pairs)."
    )
    if calibrated:
        c = calibrated.overall
        console.print(
            f"Calibrated probabilities: mF1{_threshold_label(calibrated)} {c['mF1']:.3f}, "
            f"ECE {c['ECE']:.3f} (AP and AUC rank the logits: unchanged)."
        )
    if report.excluded:
        console.print(
            f"Left out of the means (no validation positives): {', '.join(report.excluded)}"
        )
    if report.groups:
        console.print(f"Groups: {report.groups.description}.")
        for name in GROUPS:
            means = ", ".join(f"m{m} {_fmt(o[f'm{m}_{name}'])}" for m in ("AP", "AUC", "F1"))
            console.print(f"  {name:<6} {means}")


@dataclass(frozen=True)
class RunResults:
    """A finished run's validation predictions, read back from its folder to score again."""

    path: Path
    config: dict[str, Any]
    classes: list[str]
    train_counts: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    probs: dict[str, np.ndarray]  # "prob", and "calibrated" when the run has those columns
    predicted: np.ndarray | None = None  # the run's 0/1 predictions, from its final probabilities

    @property
    def final(self) -> str:
        """The kind of probabilities the run's predictions come from."""
        return "calibrated" if "calibrated" in self.probs else "prob"

    def evaluate(self, kind: str = "prob", **grouping: Any) -> Report:
        """The report of one kind of probabilities; ``grouping``: evaluate's groups, bounds.

        F1 of the run's final probabilities uses the run's own binary predictions (its
        threshold policy, held out), others the threshold 0.5.
        """
        return evaluate(
            self.probs[kind],
            self.targets,
            self.classes,
            scores=self.logits,
            train_counts=self.train_counts,
            predicted=self.predicted if kind == self.final else None,
            **grouping,
        )


def _require_files(path: Path, names: Sequence[str]) -> None:
    if not path.is_dir():
        raise CxrltError(f"{path} is not a folder: give the folder of a cxrlt run.")
    for name in names:
        if not (path / name).is_file():
            raise CxrltError(f"{path} is not a complete run: {name} is missing.")


def _columns(frame: pd.DataFrame, prefix: str, classes: Sequence[str], file: Path) -> np.ndarray:
    names = [f"{prefix}:{c}" for c in classes]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CxrltError(f"{file} lacks the columns {', '.join(missing[:3])}{more}.")
    return frame[names].to_numpy()


def read_run(path: Path | str) -> RunResults:
    """Labels, logits and probabilities of a complete run, with its classes and training counts."""
    path = Path(path)
    _require_files(path, (CONFIG, PREDICTIONS))
    config = RunDir(path, check=False).read_config()
    data = config.get("data") or {}
    if "classes" not in data or "train_counts" not in data:
        raise CxrltError(f"{path / CONFIG} lacks data.classes or data.train_counts.")
    classes = list(data["classes"])
    file = path / PREDICTIONS
    frame = pd.read_csv(file)
    kinds = [k for k in PROBABILITIES if k == "prob" or frame.columns.str.startswith(f"{k}:").any()]
    return RunResults(
        path=path,
        config=config,
        classes=classes,
        train_counts=np.asarray(data["train_counts"]),
        targets=_columns(frame, TARGET, classes, file),
        logits=_columns(frame, LOGIT, classes, file),
        probs={kind: _columns(frame, kind, classes, file) for kind in kinds},
        predicted=_columns(frame, PREDICTED, classes, file)
        if frame.columns.str.startswith(f"{PREDICTED}:").any()
        else None,
    )


def _run_row(path: Path, name: str, grouping: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """One run's row of the comparison, and a note when some metric could not be had."""
    _require_files(path, (CONFIG, METRICS))
    config = RunDir(path, check=False).read_config()
    metrics = read_json(path / METRICS)
    options, specs = config.get("options", {}), config.get("specs", {})
    row = {
        "run": name,
        "loss": options.get("loss", "?"),
        "arch": specs.get("arch", {}).get("name", options.get("arch", "?")),
        "epochs": config.get("training", {}).get("epochs_done", options.get("epochs")),
        **{key: metrics.get(key, np.nan) for key in COMPARED},
        "groups": metrics.get("groups", ""),
    }
    lacking = [key for key in COMPARED if key not in metrics]
    if not lacking:
        return row, ""
    try:
        report = read_run(path).evaluate(**grouping)
    except CxrltError as error:
        return row, f"{name}: {', '.join(lacking)} not in {METRICS} nor recomputable ({error})"
    row.update({key: report.overall[key] for key in lacking})
    row["groups"] = row["groups"] or report.groups.description
    return row, ""


def compare_runs(
    paths: Sequence[Path | str], *, groups: str = "thirds", bounds: tuple[int, int] = (100, 1000)
) -> tuple[pd.DataFrame, list[str]]:
    """One row per run: its settings and metrics, with notes on any that could not be had.

    Metrics come from each run's ``metrics.json``; those it lacks (runs older than ECE or the
    groups) are recomputed from the predictions, grouped by ``groups`` and ``bounds``.
    """
    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):  # same folder names under different parents
        names = [str(p) for p in paths]
    grouping = {"groups": groups, "bounds": bounds}
    rows = [_run_row(p, n, grouping) for p, n in zip(paths, names, strict=True)]
    notes = [note for _, note in rows if note]
    return pd.DataFrame([row for row, _ in rows]), notes


def _cells(row: pd.Series) -> list[str]:
    return [str(row[c]) for c in SETTINGS] + [_fmt(row[c]) for c in COMPARED]


def print_comparison(console: Console, frame: pd.DataFrame, notes: Sequence[str]) -> None:
    table = Table(title="Runs compared (validation)")
    for column in (*SETTINGS, *COMPARED):
        table.add_column(column, justify="right" if column in COMPARED else "left")
    for _, row in frame.iterrows():
        table.add_row(*_cells(row))
    console.print(table)
    for line in _group_lines(frame) + list(notes):
        console.print(line, highlight=False)


def _group_lines(frame: pd.DataFrame) -> list[str]:
    return [f"Groups of {row.run}: {row.groups}" for row in frame.itertuples() if row.groups]


def comparison_markdown(frame: pd.DataFrame, notes: Sequence[str]) -> str:
    header = [*SETTINGS, *COMPARED]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for _, row in frame.iterrows()]
    extra = [f"- {line}" for line in _group_lines(frame) + list(notes)]
    return "\n".join(lines + ([""] + extra if extra else [])) + "\n"
