"""A finished run scored on another labelled data set: the development-to-test gap.

A run's validation split comes from the data it trained on. The founding study lost 0.13 mAP
between that split and the official test set (a second hospital, radiologist labels);
scoring a run on another labelled set shows such a gap early. Every labelled image of the
other set is scored, since the run never saw any of them (there is no split), on the classes
both label lists share, matched by name through :mod:`cxrlt.data.synonyms`. Probabilities go
through the run's calibrator and predictions through its threshold policy, both as fitted on
the run's own validation split.

The output folder is laid out like a run directory (``config.json``, ``metrics.json``,
``valid_predictions.csv`` with the other set's images), so ``cxrlt report`` and ``cxrlt
compare`` read it, plus ``classes.csv``: how each class of either side was matched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from cxrlt import __version__
from cxrlt.data.synonyms import ClassMatch, match_classes
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import Report
from cxrlt.outputs.run_dir import CONFIG, METRICS, SKIPPED, SPLIT, RunDir, check_run_folder
from cxrlt.outputs.run_schema import COMPLETE, DataRecord, EvaluationRecord, RunConfig
from cxrlt.registry import resolve


@dataclass(frozen=True)
class CrossEvaluation:
    """What scoring a run on another data set gave: the report, the matching, the folder."""

    report: Report
    match: ClassMatch
    out: RunDir


def _check_run(run: Path) -> RunConfig:
    """A complete run's config (every member's, for an ensemble), checked before any work:
    it has the options and data that scoring it needs."""
    from cxrlt.prediction import complete_run

    config = RunDir(run, check=False).read_config()
    for member in config.ensemble.members if config.ensemble else [run]:
        complete_run(member)
    for section in ("options", "data"):
        config.required(section, run / CONFIG)
    return config


def _same_place(a: str | None, b: str | None) -> bool:
    return a == b if a is None or b is None else Path(a).resolve() == Path(b).resolve()


def _check_other_data(run: Path, config: RunConfig, dataset: str, data: str | None) -> None:
    """Refuse the very data the run was trained and validated on."""
    options = config.required("options", run / CONFIG)
    same_spec = resolve("datasets", options.dataset).spec == resolve("datasets", dataset).spec
    if same_spec and _same_place(options.data, data):
        raise CxrltError(
            f"{run} was trained on {dataset!r}{f' at {data}' if data else ''}: scoring its "
            f"training images would flatter it, and its validation metrics are already in "
            f"{run / METRICS}. Give another labelled data set with --dataset and --data."
        )


def _check_out(out: Path, run: Path, config: RunConfig, overwrite: bool) -> RunDir:
    runs = [run, *(Path(m) for m in (config.ensemble.members if config.ensemble else ()))]
    if any(out.resolve() == r.resolve() for r in runs):
        raise CxrltError(f"--out {out} is the run's own folder: choose another folder.")
    check_run_folder(out, overwrite=overwrite)
    return RunDir(out, check=False)


def _describe_match(match: ClassMatch, run_total: int, data_total: int) -> list[str]:
    table = match.table()
    synonyms = table[table["match"] == "synonym"]
    named = ", ".join(f"{r.run_class} = {r.dataset_class}" for r in synonyms.itertuples())
    lines = [
        f"Classes: {len(match.pairs)} of the run's {run_total} matched with the data set's "
        f"{data_total}"
        + (f" ({len(synonyms)} through synonyms: {named})" if named else "")
        + ". Scored on those only."
    ]
    if match.run_only:
        lines.append(f"The run's classes with no match: {', '.join(match.run_only)}.")
    if match.data_only:
        lines.append(f"The data set's classes with no match: {', '.join(match.data_only)}.")
    return lines


def evaluate_on(
    run: Path | str,
    dataset: str,
    *,
    data: str | None = None,
    out: Path | str,
    bs: int = 64,
    device: Any = "cpu",
    skip_bad: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> CrossEvaluation:
    """Score the run (or ensemble) in ``run`` on every labelled image of ``dataset`` (read
    from ``data``), on the classes both share, and write the results in ``out``.

    The run, the data set's name and table, the class matching and ``out`` are all checked
    before any image is decoded.
    """
    from cxrlt.data.problems import check, skipped_table
    from cxrlt.outputs.report import print_report

    console = console or Console()
    run, out = Path(run), Path(out)
    config = _check_run(run)
    _check_other_data(run, config, dataset, data)
    other = resolve("datasets", dataset)
    labelled = other.build(path=data)
    run_classes = list(config.data.classes)
    match = match_classes(run_classes, labelled.classes)
    if not match.pairs:
        raise CxrltError(
            f"The run's classes and those of {dataset!r} share no finding (the run: "
            f"{', '.join(run_classes[:6])}...; the data set: {', '.join(labelled.classes[:6])}"
            "...). Names are matched after normalising case, spaces, underscores and hyphens, "
            "then through the table `cxrlt evaluate --synonyms` prints: rename the columns."
        )
    run_dir = _check_out(out, run, config, overwrite)
    ids, lines = labelled.image_ids, labelled.lines
    bad = check(labelled.source, labelled.problems, ids, lines, skip=skip_bad)
    skipped = skipped_table(labelled.problems, ids, lines)
    labelled = labelled.without(bad)
    labelled, seen = _without_seen_images(run, labelled)
    console.print(
        f"[bold]{labelled.name}[/bold]: {len(labelled)} labelled images, every one scored "
        "(no split)"
        + (f"; {len(bad)} bad row{'s' * (len(bad) > 1)} skipped ({SKIPPED})" if bad else "")
        + (f"; {seen} images the run trained or validated on left out" if seen else "")
        + "."
    )
    for line in [*labelled.notes, *_describe_match(match, len(run_classes), len(labelled.classes))]:
        console.print(line, highlight=False)
    shared = [run_classes.index(name) for name in match.run_classes]
    counts = np.asarray(config.data.train_counts)[shared]
    report = _score(run, config, labelled, match, shared, run_dir, bs, device)
    run_dir.write_classes(match.table())
    run_dir.write_split(  # the patients its intervals resampled, for report and compare
        labelled.frame[["ImageID", "PatientID"]].assign(split="valid")
    )
    if len(skipped):
        run_dir.write_skipped(skipped)
    described = EvaluationRecord(
        run=str(run.resolve()),
        dataset=str(other.spec),
        data=data,
        images=len(labelled),
        scored="every labelled image of the data set (no split)",
        skipped_rows=len(bad),
        left_out_seen_by_run=seen,
        run_only=tuple(match.run_only),
        data_only=tuple(match.data_only),
    )
    run_dir.write_config(_config(config, described, match, counts))
    print_report(console, report, counts, scored_on=f"{labelled.name} (every labelled image)")
    console.print(f"Evaluation written to [bold]{run_dir.path}[/bold]")
    return CrossEvaluation(report, match, run_dir)


def _without_seen_images(run: Path, labelled: Any) -> tuple[Any, int]:
    """``labelled`` less the images the run trained or was validated on (its ``split.csv``,
    matched by file name, since two data sets may name one file by different paths), and how
    many went: a score on them would not measure a new data set."""
    split = RunDir(run, check=False).read_split(f"restore the run's own {SPLIT}")
    if split is None:
        return labelled, 0
    seen = {Path(i).name for i in split["ImageID"]}
    rows = [row for row, image in enumerate(labelled.image_ids) if Path(image).name in seen]
    if len(rows) == len(labelled):
        raise CxrltError(
            f"Every image of {labelled.name!r} is one the run trained or was validated on "
            f"({run / SPLIT}): scoring them would not measure another data set."
        )
    return labelled.without(rows), len(rows)


def _score(
    run: Path,
    config: RunConfig,
    labelled: Any,
    match: ClassMatch,
    shared: list[int],
    run_dir: RunDir,
    bs: int,
    device: Any,
) -> Report:
    """Predict every image, keep the shared classes, evaluate, write predictions and metrics."""
    from cxrlt.evaluation.metrics import evaluate
    from cxrlt.prediction import predict_table, saved_thresholds

    probs, scores = predict_table(run, labelled.frame, bs=bs, device=device, part="")
    probs, scores = probs[:, shared], scores[:, shared]
    thresholds = saved_thresholds(run, len(config.data.classes))[shared]
    targets = labelled.frame[match.data_classes].to_numpy(np.int64)
    report = evaluate(
        probs,
        targets,
        match.run_classes,
        threshold=thresholds,
        scores=scores,
        train_counts=np.asarray(config.data.train_counts)[shared],
        patients=labelled.patients,
    )
    run_dir.start()  # what --overwrite replaces goes only now, once the scoring succeeded
    run_dir.write_predictions(
        labelled.image_ids,
        match.run_classes,
        targets,
        scores,
        probs,
        predicted=probs >= thresholds,
    )
    run_dir.write_metrics(report)
    return report


def _config(
    config: RunConfig, described: EvaluationRecord, match: ClassMatch, counts: np.ndarray
) -> RunConfig:
    """The folder's config: what was scored on what, and the run's settings for comparisons."""
    return RunConfig(
        cxrlt_version=__version__,
        created=dt.datetime.now().isoformat(timespec="seconds"),
        status=COMPLETE,
        evaluation=described,
        options=config.options,
        specs=config.specs,
        training=config.training,
        data=DataRecord(
            classes=tuple(match.run_classes),
            train_counts=tuple(counts.tolist()),
            n_train=config.data.n_train,
            n_valid=described.images,
        ),
    )
