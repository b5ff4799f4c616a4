"""Ensembles: several finished runs averaged into a new run directory that behaves like any.

Members must share the validation split (same images, classes and labels), which runs with
the same data set, ``--valid-frac`` and ``--seed`` do. Each member contributes its final
probabilities (calibrated when it has a calibrator), merged as a weighted mean of logits
(default: a geometric-style mean that keeps a confident member's say) or of probabilities.
The ensemble's ``cxrlt predict`` predicts with every member and merges the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt import __version__
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import Report, evaluate
from cxrlt.outputs.run_dir import CONFIG, RunDir
from cxrlt.outputs.run_schema import COMPLETE, EnsembleRecord, RunConfig

MERGES = ("logit", "prob")
_EPS = 1e-12  # probabilities of exactly 0 or 1 get a finite logit


def logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def merge_probabilities(
    members: Sequence[np.ndarray], weights: Sequence[float], merge: str
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted merge of the members' probabilities: (probabilities, logits)."""
    w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    if merge == "logit":
        z = sum(wi * logit(p) for wi, p in zip(w, members, strict=True))
        return 1 / (1 + np.exp(-z)), z
    p = sum(wi * np.asarray(p, dtype=np.float64) for wi, p in zip(w, members, strict=True))
    return p, logit(p)


def check_weights(weights: Sequence[float] | None, n_runs: int) -> list[float]:
    if weights is None:
        return [1.0] * n_runs
    finite = all(math.isfinite(w) and w >= 0 for w in weights)
    if len(weights) != n_runs or not finite or not sum(weights) > 0:
        raise CxrltError(
            f"--weights needs {n_runs} non-negative numbers, one per run, not all zero; "
            f"got {list(weights)}."
        )
    return list(weights)


def ensemble_runs(
    runs: Sequence[Path | str],
    out: Path | str,
    *,
    merge: str = "logit",
    weights: Sequence[float] | None = None,
    overwrite: bool = False,
) -> tuple[RunDir, Report]:
    """Average ``runs`` into the run directory ``out``; returns it and its report."""
    if len(runs) < 2:
        raise CxrltError(
            f"An ensemble needs at least two runs, got {len(runs)}: give two or more run "
            "folders validated on the same split (same data, --valid-frac and --seed)."
        )
    if merge not in MERGES:
        raise CxrltError(f"--merge {merge!r} is not one of {', '.join(MERGES)}.")
    weights = check_weights(weights, len(runs))
    from cxrlt.outputs.report import read_run

    run_dir = RunDir(out, overwrite=overwrite)
    members = [read_run(run) for run in runs]
    first = members[0]
    for results, run in zip(members[1:], runs[1:], strict=True):
        if results.classes != first.classes:
            raise CxrltError(
                f"{run} predicts other classes than {runs[0]}: they cannot be merged. Ensemble "
                "runs trained on the same data set (and classes)."
            )
        if not results.same_images(first) or not np.array_equal(results.targets, first.targets):
            raise CxrltError(
                f"{run} was validated on other images than {runs[0]}: an ensemble needs the "
                "same split (same data set, --valid-frac and --seed)."
            )
    finals = [r.probs[r.final] for r in members]
    probs, logits = merge_probabilities(finals, weights, merge)
    report = evaluate(
        probs,
        first.targets,
        first.classes,
        scores=logits,
        train_counts=first.train_counts,
        patients=first.patients,
    )
    submission = _merged_submission([Path(run) for run in runs], weights, merge, first)
    split = RunDir(runs[0], check=False).read_split(f"restore {runs[0]}'s own split.csv")
    run_dir.start()
    run_dir.write_predictions(first.image_ids, first.classes, first.targets, logits, probs)
    run_dir.write_metrics(report)
    if split is not None:  # the members' patients, for report and compare
        run_dir.write_split(split)
    members_at = tuple(str(Path(run).resolve()) for run in runs)  # predict works from anywhere
    if submission is not None:
        run_dir.write_submission(*submission)
    options = first.config.required("options", first.path / CONFIG)
    run_dir.write_config(
        RunConfig(
            cxrlt_version=__version__,
            created=dt.datetime.now().isoformat(timespec="seconds"),
            status=COMPLETE,
            ensemble=EnsembleRecord(members_at, merge, tuple(weights)),
            options=dataclasses.replace(options, loss="ensemble", arch="ensemble"),
            data=first.config.data,
        )
    )
    return run_dir, report


def _merged_submission(
    runs: list[Path], weights: list[float], merge: str, first: Any
) -> tuple[str, pd.Series, np.ndarray, list[str]] | None:
    """The members' submissions merged (data set, ImageIDs, probabilities, classes) when
    every member wrote one for the same images; checked before anything is written."""
    from cxrlt.registry import resolve

    read = [RunDir(run, check=False).read_submission() for run in runs]
    frames = [frame for frame in read if frame is not None]
    if len(frames) < len(runs):
        return None
    ids = frames[0].iloc[:, 0]
    if any(not f.columns.equals(frames[0].columns) or not f.iloc[:, 0].equals(ids) for f in frames):
        raise CxrltError(
            "The members' submission.csv files list different images or columns: predict "
            "them again on the same test set, or leave the submission out."
        )
    probs, _ = merge_probabilities([f.iloc[:, 1:].to_numpy() for f in frames], weights, merge)
    options = first.config.required("options", first.path / CONFIG)
    dataset = resolve("datasets", options.dataset).entry.name
    return dataset, ids, probs, list(frames[0].columns[1:])
