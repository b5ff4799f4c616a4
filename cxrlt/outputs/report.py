"""Terminal tables for people: what the data looks like and how the run scored."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from cxrlt.data.labels import imbalance_ratio
from cxrlt.evaluation.metrics import Report


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


def print_report(console: Console, report: Report, train_counts: np.ndarray) -> None:
    table = Table(title="Validation metrics per class")
    for column in ("class", "train n", "valid n", "AP", "AUC", "F1@0.5"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for (name, row), n_train in zip(report.per_class.iterrows(), train_counts, strict=True):
        table.add_row(
            name, str(n_train), str(int(row.n_pos)), _fmt(row.AP), _fmt(row.AUC), _fmt(row.F1)
        )
    console.print(table)
    o = report.overall
    console.print(
        f"[bold]mAP {o['mAP']:.3f}[/bold] (chance level {o['mAP_chance']:.3f}), "
        f"mAUC {o['mAUC']:.3f}, mF1@0.5 {o['mF1']:.3f} over {o['n_classes_scored']} classes "
        f"with validation positives, {o['n_images']} images."
    )
    if report.excluded:
        console.print(
            f"Left out of the means (no validation positives): {', '.join(report.excluded)}"
        )
