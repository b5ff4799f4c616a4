"""Reports for people: the data, a run's scores (recomputed from the files it left), and runs
side by side.

A run is scored again from ``valid_predictions.csv``: ``target:<class>`` columns for the labels,
``logit:<class>`` for ranking (AP, AUC), ``prob:<class>`` and, when a calibrator wrote them,
``calibrated:<class>`` for the thresholded and calibration metrics (F1, ECE). The patient of
each image, which the intervals resample (:mod:`cxrlt.evaluation.bootstrap`), comes from the
run's ``split.csv``; without it each image counts as its own patient, and the report says so.
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
from cxrlt.evaluation.bootstrap import N_RESAMPLES, SEED, Difference, Intervals, paired_draws
from cxrlt.evaluation.groups import GROUPS, NO_POSITIVES
from cxrlt.evaluation.metrics import Report, evaluate
from cxrlt.outputs.run_dir import CONFIG, METRICS, PREDICTIONS, SPLIT, RunDir
from cxrlt.outputs.run_schema import CALIBRATED, PROB, RunConfig
from cxrlt.outputs.tables import print_table

SETTINGS = ("run", "loss", "arch", "epochs", "select")
COMPARED = ("mAP", "mAUC", "mF1", "ECE", "mAP_head", "mAP_medium", "mAP_tail")
PAIRED = ("mAP", "mAUC", "mF1", "ECE")  # the paired differences between runs
NO_SPLIT = (
    f"{SPLIT} is missing: each image counted as its own patient, so the intervals are too "
    "narrow when patients have several images"
)


def _fmt(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.3f}"


def _fmt_ci(value: float, interval: Sequence[float] | None) -> str:
    """``0.450 [0.412, 0.489]``: a value and its interval, when it has one."""
    if interval is None or np.isnan(value) or np.isnan(interval[0]):
        return _fmt(value)
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _class_interval(intervals: Intervals | None, name: str, metric: str) -> tuple | None:
    if intervals is None:
        return None
    return tuple(intervals.per_class.loc[name, [f"{metric}_low", f"{metric}_high"]])


def print_data_summary(console: Console, dls: Any) -> None:
    counts = dls.class_counts
    console.print(
        f"[bold]{dls.data.name}[/bold]: {len(dls.data)} images, {dls.n_train} train / "
        f"{int(dls.is_valid.sum())} valid (grouped by patient, stratified), "
        f"{len(dls.classes)} classes, "
        f"train imbalance {imbalance_ratio(dls.data.labels[~dls.is_valid]):.0f}:1 "
        f"(most {counts.max()}, least {counts[counts > 0].min()} positives)"
    )
    untrained = [c for c, n in zip(dls.classes, counts, strict=True) if n == 0]
    if untrained:
        console.print(
            f"[yellow]Note:[/yellow] {len(untrained)} "
            f"{'class has' if len(untrained) == 1 else 'classes have'} no training positives "
            f"({', '.join(untrained)}): the model cannot learn them; the report lists them "
            f"as group '{NO_POSITIVES}', outside head / medium / tail."
        )
    print_data_notes(console, dls.data)
    if len(dls.skipped):
        console.print(
            f"[yellow]Skipped {dls.skipped['ImageID'].nunique()} bad rows[/yellow] "
            "(listed in the run directory's skipped.csv)."
        )


def print_data_notes(console: Console, data: Any) -> None:
    """A data set's warnings and notes (a LabelledImages'), as `run` and `prepare` show them."""
    for warning in data.warnings:
        console.print(f"[bold red]Warning:[/bold red] {warning}", highlight=False)
    for note in data.notes:
        console.print(f"[yellow]Note:[/yellow] {note}")


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
    uncalibrated: Report | None = None,
    scored_on: str = "validation",
) -> None:
    """The per-class table, the overall means and, when grouped, the head / medium / tail means,
    each with its 95% interval when the report has them.

    ``uncalibrated`` (the same predictions before calibration) adds its F1 and ECE beside
    them.
    ``scored_on`` names the images (``cxrlt evaluate`` scores another data set's).
    """
    at = _threshold_label(report)
    short = "valid" if scored_on == "validation" else "scored"
    columns = ["class", "train n", f"{short} n", "AP", "AUC", f"F1{at}", "ECE"]
    if report.groups:
        columns.insert(1, "group")
    if uncalibrated:
        columns += ["F1 before calibration", "ECE before calibration"]
    table = Table(title=f"Metrics per class on {scored_on}")
    for column in columns:
        table.add_column(column, justify="left" if column in ("class", "group") else "right")
    for (name, row), n_train in zip(report.per_class.iterrows(), train_counts, strict=True):
        cells = [name, str(n_train), str(int(row.n_pos))]
        cells += [
            _fmt_ci(row[c], _class_interval(report.intervals, name, c))
            for c in ("AP", "AUC", "F1", "ECE")
        ]
        if report.groups:
            cells.insert(1, report.groups.group[name])
        if uncalibrated:
            cells += [_fmt(uncalibrated.per_class.loc[name, c]) for c in ("F1", "ECE")]
        table.add_row(*cells)
    print_table(console, table)
    o = report.overall
    ci = report.intervals.overall if report.intervals else {}

    def value(key: str) -> str:
        return _fmt_ci(o[key], ci.get(key))

    console.print(
        f"[bold]mAP {value('mAP')}[/bold] (chance level {o['mAP_chance']:.3f}), "
        f"mAUC {value('mAUC')}, mF1{at} {value('mF1')} over {o['n_classes_scored']} classes "
        f"with positives in {scored_on}, {o['n_images']} images; ECE {value('ECE')} (15 bins, "
        "all image-class pairs)."
    )
    if report.intervals:
        console.print(f"{report.intervals.describe()}.", highlight=False)
    if uncalibrated:
        c = uncalibrated.overall
        console.print(
            f"Before calibration: mF1{_threshold_label(uncalibrated)} {c['mF1']:.3f}, "
            f"ECE {c['ECE']:.3f} (AP and AUC rank the logits: unchanged)."
        )
    if report.excluded:
        console.print(
            f"Left out of the means (no positives in {scored_on}): {', '.join(report.excluded)}"
        )
    if report.groups:
        console.print(f"Groups: {report.groups.description}.")
        for name in GROUPS:
            means = ", ".join(f"m{m} {value(f'm{m}_{name}')}" for m in ("AP", "AUC", "F1"))
            console.print(f"  {name:<6} {means}")
        if untrained := report.groups.without_positives:
            console.print(
                f"  {NO_POSITIVES:<6} no training positives, left out of the group means: "
                f"{', '.join(untrained)}",
                highlight=False,
            )


@dataclass(frozen=True)
class RunResults:
    """A finished run's validation predictions, read back from its folder to score again."""

    path: Path
    config: RunConfig
    classes: list[str]
    train_counts: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    probs: dict[str, np.ndarray]  # "prob", and "calibrated" when the run has those columns
    image_ids: np.ndarray  # in the order of the rows
    patients: np.ndarray  # each image's patient (its ImageID when split.csv is missing)
    predicted: np.ndarray | None = None  # the run's 0/1 predictions, from its final probabilities
    patient_note: str = ""  # why the patients are not the run's own, when they are not

    @property
    def final(self) -> str:
        """The kind of probabilities the run's predictions come from."""
        return CALIBRATED if CALIBRATED in self.probs else PROB

    def same_images(self, other: RunResults) -> bool:
        """Scored on the same images in the same order: the runs can be compared pairwise."""
        return np.array_equal(self.image_ids, other.image_ids)

    def evaluate(
        self,
        kind: str = PROB,
        *,
        intervals: bool = True,
        patients: np.ndarray | None = None,
        seed: int = SEED,
        **grouping: Any,
    ) -> Report:
        """The report of one kind of probabilities; ``grouping``: evaluate's groups, bounds.

        F1 of the run's final probabilities uses the run's own binary predictions (its
        threshold policy, held out), others the threshold 0.5. With ``intervals``, the 95%
        intervals of a patient bootstrap drawn with ``seed``, over the run's patients or
        ``patients`` (another run's, to pair the two).
        """
        return evaluate(
            self.probs[kind],
            self.targets,
            self.classes,
            scores=self.logits,
            train_counts=self.train_counts,
            predicted=self.predicted if kind == self.final else None,
            patients=(self.patients if patients is None else patients) if intervals else None,
            bootstrap_seed=seed,
            **grouping,
        )


def _require_files(path: Path, names: Sequence[str]) -> None:
    if not path.is_dir():
        raise CxrltError(f"{path} is not a folder: give the folder of a cxrlt run.")
    for name in names:
        if not (path / name).is_file():
            raise CxrltError(f"{path} is not a complete run: {name} is missing.")


def read_run(path: Path | str) -> RunResults:
    """Labels, logits and probabilities of a complete run, with its classes and training counts."""
    path = Path(path)
    _require_files(path, (CONFIG, PREDICTIONS))
    run_dir = RunDir(path, check=False)
    config = run_dir.read_config()
    data = config.required("data", path / CONFIG)
    predictions = run_dir.read_predictions(data.classes)
    probs = {PROB: predictions.probs}
    if predictions.calibrated is not None:
        probs[CALIBRATED] = predictions.calibrated
    patients, note = _patients(run_dir, predictions.image_ids)
    return RunResults(
        path=path,
        config=config,
        classes=list(data.classes),
        train_counts=np.asarray(data.train_counts),
        targets=predictions.targets,
        logits=predictions.logits,
        probs=probs,
        image_ids=predictions.image_ids,
        patients=patients,
        predicted=predictions.predicted,
        patient_note=note,
    )


def _patients(run_dir: RunDir, image_ids: np.ndarray) -> tuple[np.ndarray, str]:
    """Each image's patient from the run's split.csv; without one, the image itself and a note."""
    fix = f"restore the run's own {SPLIT}, or remove it to count each image as its own patient"
    split = run_dir.read_split(fix)
    if split is None:
        return image_ids, NO_SPLIT
    patient_of = split.drop_duplicates("ImageID").set_index("ImageID")["PatientID"]
    patients = pd.Series(image_ids).map(patient_of)
    absent = patients.isna().to_numpy()
    if absent.any():
        raise CxrltError(
            f"{run_dir.file(SPLIT)} has no patient for {absent.sum()} of the {len(image_ids)} "
            f"images in {PREDICTIONS} (first: {image_ids[absent][0]}): {fix}."
        )
    return patients.to_numpy(str), ""


def paired_difference(first: Report, other: Report) -> dict[str, tuple[float, np.ndarray]]:
    """For each of mAP, mAUC, mF1 and ECE: ``other - first``, and its value in every resample.

    Both reports must carry intervals from the same draws: the same images scored with the
    same patients and seed (``other_run.evaluate(patients=first_run.patients)``).
    """
    if first.intervals is None or other.intervals is None:
        raise CxrltError("A paired difference needs both reports with their intervals.")
    draws = paired_draws(first.intervals.resampled, other.intervals.resampled)
    return {m: (other.overall[m] - first.overall[m], draws[m]) for m in PAIRED}


def _run_row(path: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run's row of the comparison as its metrics.json gives it, and that file's contents."""
    _require_files(path, (CONFIG, METRICS))
    run_dir = RunDir(path, check=False)
    config, metrics = run_dir.read_config(), run_dir.read_metrics()
    options, specs = config.options, config.specs or {}
    trained = config.training.epochs_done if config.training else None
    row = {
        "run": name,
        "loss": options.loss if options else "?",
        "arch": specs["arch"].name if "arch" in specs else options.arch if options else "?",
        "epochs": trained if trained is not None else options.epochs if options else None,
        # how the reported model was chosen; runs before cross-fitting chose on all images
        "select": metrics.get("selection", {}).get(
            "protocol", options.select if options else "best"
        ),
        **{key: metrics.get(key, np.nan) for key in COMPARED},
        "groups": metrics.get("groups", ""),
    }
    for key in COMPARED:
        row[f"{key}_low"], row[f"{key}_high"] = metrics.get(f"{key}_ci", (np.nan, np.nan))
    return row, metrics


def compare_runs(
    paths: Sequence[Path | str],
    *,
    groups: str = "thirds",
    bounds: tuple[int, int] = (100, 1000),
    intervals: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per run: its settings and metrics and, with ``intervals``, their 95% intervals
    and, for each run after the first scored on the same images, the paired bootstrap
    difference from the first run (``<metric>_diff``, ``_diff_low``, ``_diff_high``, ``_p``);
    with notes on whatever could not be had.

    Metrics and intervals come from each run's ``metrics.json``; those it lacks (runs older than
    ECE, the groups or the intervals) are recomputed from the predictions, grouped by ``groups``
    and ``bounds``. A paired difference resamples both runs with the first run's patients and
    the same draws, so that both are scored on the same resampled patients.
    """
    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):  # same folder names under different parents
        names = [str(p) for p in paths]
    grouping = {"groups": groups, "bounds": bounds}
    paired = intervals and len(paths) > 1
    rows, notes, unsplit = [], [], []
    first: tuple[str, RunResults, Report] | None = None
    for index, (path, name) in enumerate(zip(paths, names, strict=True)):
        row, metrics = _run_row(path, name)
        rows.append(row)
        lacking = [key for key in COMPARED if key not in metrics]
        unbounded = intervals and any(f"{key}_ci" not in metrics for key in COMPARED)
        if not (lacking or unbounded or paired):
            continue
        try:
            results = read_run(path)
        except CxrltError as error:
            if lacking:
                missing = ", ".join(lacking)
                notes.append(f"{name}: {missing} not in {METRICS} nor recomputable ({error})")
            if paired and index == 0:
                notes.append(f"No paired differences: the first run {name} cannot be read again.")
            continue
        pairs = first is not None and results.same_images(first[1])
        report = results.evaluate(
            results.final,
            intervals=intervals,
            patients=first[1].patients if pairs else None,
            **grouping,
        )
        row.update({key: report.overall[key] for key in lacking})
        row["groups"] = row["groups"] or report.groups.description
        if not intervals:
            continue
        for key in COMPARED:
            if f"{key}_ci" not in metrics:
                row[f"{key}_low"], row[f"{key}_high"] = report.intervals.overall[key]
        if results.patient_note:
            unsplit.append(name)
        if index == 0:
            first = name, results, report
        elif pairs:
            row |= _difference_columns(first[0], paired_difference(first[2], report))
        elif first is not None:
            notes.append(
                f"{name}: no paired test against {first[0]}: it was scored on other images "
                f"(the ImageIDs of {PREDICTIONS} differ, or their order)."
            )
    if unsplit:
        notes.append(f"{', '.join(unsplit)}: {NO_SPLIT}.")
    if any(np.isfinite(row["mAP_low"]) for row in rows):
        notes.append(
            "Intervals: 95%, percentile bootstrap over patients "
            f"({N_RESAMPLES:,} resamples, seed {SEED})."
        )
    return pd.DataFrame(rows), notes


def _difference_columns(
    first: str, differences: dict[str, tuple[float, np.ndarray]]
) -> dict[str, Any]:
    """A run's comparison columns for its paired differences from the run ``first``."""
    columns: dict[str, Any] = {"paired_with": first}
    for metric, (value, draws) in differences.items():
        columns |= Difference.of(value, draws).columns(metric)
    return columns


def _cells(row: pd.Series) -> list[str]:
    return [str(row[c]) for c in SETTINGS] + [
        _fmt_ci(row[c], (row[f"{c}_low"], row[f"{c}_high"])) for c in COMPARED
    ]


def _differences(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the paired differences from the first run, if any."""
    if "paired_with" not in frame.columns:
        return [], []
    header = ["run"] + [f"{kind}{m}" for m in PAIRED for kind in ("Δ", "p ")]
    rows = []
    for _, row in frame[frame["paired_with"].notna()].iterrows():
        cells = [str(row["run"])]
        for m in PAIRED:
            columns = [f"{m}_diff", f"{m}_diff_low", f"{m}_diff_high", f"{m}_p"]
            difference = Difference(*row[columns], N_RESAMPLES)
            cells += [difference.interval_text(), difference.p_text()]
        rows.append(cells)
    return header, rows


def _differences_title(frame: pd.DataFrame) -> str:
    first = frame["run"].iloc[0]
    return (
        f"Paired differences from {first} (run - {first}; same images, the same "
        f"{N_RESAMPLES:,} resamples of patients for both; 95% interval, two-sided p)"
    )


def print_comparison(console: Console, frame: pd.DataFrame, notes: Sequence[str]) -> None:
    table = Table(title="Runs compared (validation)")
    for column in (*SETTINGS, *COMPARED):
        table.add_column(column, justify="right" if column in COMPARED else "left")
    for _, row in frame.iterrows():
        table.add_row(*_cells(row))
    print_table(console, table)
    header, rows = _differences(frame)
    if rows:
        paired = Table(title=_differences_title(frame))
        for column in header:
            paired.add_column(column, justify="left" if column == "run" else "right")
        for cells in rows:
            paired.add_row(*cells)
        print_table(console, paired)
    for line in _group_lines(frame) + list(notes):
        console.print(line, highlight=False)


def _group_lines(frame: pd.DataFrame) -> list[str]:
    return [f"Groups of {row.run}: {row.groups}" for row in frame.itertuples() if row.groups]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def comparison_markdown(frame: pd.DataFrame, notes: Sequence[str]) -> str:
    lines = markdown_table([*SETTINGS, *COMPARED], [_cells(row) for _, row in frame.iterrows()])
    header, rows = _differences(frame)
    if rows:
        lines += ["", f"{_differences_title(frame)}:", "", *markdown_table(header, rows)]
    extra = [f"- {line}" for line in _group_lines(frame) + list(notes)]
    return "\n".join(lines + ([""] + extra if extra else [])) + "\n"
