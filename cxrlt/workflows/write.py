"""The write stage of a run: its config, split, weights and results into the run directory,
through a writer that only the first process holds open."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from cxrlt import __version__

if TYPE_CHECKING:
    from cxrlt.evaluation.metrics import Report
    from cxrlt.options import RunOptions
    from cxrlt.outputs.run_dir import RunDir
    from cxrlt.outputs.run_schema import RunConfig, SelectionRecord
    from cxrlt.registry import Resolved
    from cxrlt.training.tracking import Tracking
    from cxrlt.workflows.calibrate import Calibrated
    from cxrlt.workflows.data import RunData
    from cxrlt.workflows.specs import RunSpecs


class RunWriter:
    """The run directory's ``start`` and ``write_*`` methods on the process that writes the
    run (``active``); elsewhere the same calls do nothing, so every rank runs the same code."""

    def __init__(self, run_dir: RunDir, *, active: bool) -> None:
        self.run_dir = run_dir
        self.active = active

    @property
    def path(self) -> Path:
        return self.run_dir.path

    def __getattr__(self, name: str) -> Any:
        if name != "start" and not name.startswith("write_"):
            raise AttributeError(name)
        write = getattr(self.run_dir, name)
        return write if self.active else _skipped

    def write_data(self, data: RunData) -> None:
        """The split (and the rows --skip-bad left out), once the run is known to start."""
        self.write_split(data.split)
        if len(data.dls.skipped):
            self.write_skipped(data.dls.skipped)


def _skipped(*args: Any, **kwargs: Any) -> None:
    """What a write is on a process that does not write the run."""


def run_config(
    options: RunOptions,
    specs: RunSpecs,
    post: Sequence[Resolved],
    dls: Any,
    device: Any,
    *,
    status: str,
) -> RunConfig:
    """config.json: the options and resolved specs that repeat the run, the data it saw, the
    environment it ran in; stages add their records (training, selection) to it."""
    import torch

    from cxrlt.model.build import input_preprocessing
    from cxrlt.outputs.run_schema import DataRecord, EnvironmentRecord, RunConfig, SpecRecord

    return RunConfig(
        cxrlt_version=__version__,
        created=dt.datetime.now().isoformat(timespec="seconds"),
        status=status,
        options=options,
        specs={
            role: SpecRecord(**resolved.to_dict()) for role, resolved in specs.by_role().items()
        },
        post=tuple(SpecRecord(**step.to_dict()) for step in post),
        data=DataRecord(
            classes=tuple(dls.classes),
            train_counts=tuple(dls.class_counts.tolist()),
            n_train=dls.n_train,
            n_valid=int(dls.is_valid.sum()),
            provenance=dict(dls.data.provenance),
        ),
        environment=EnvironmentRecord(
            python=platform.python_version(), torch=torch.__version__, device=str(device)
        ),
        preprocessing=input_preprocessing(specs.arch).to_dict(),
    )


def write_results(
    writer: RunWriter,
    specs: RunSpecs,
    data: RunData,
    calibrated: Calibrated,
    report: Report,
    selection: SelectionRecord,
) -> None:
    """The validation predictions, the metrics and the fitted calibration."""
    dls = data.dls
    fitted = calibrated.fitted
    writer.write_predictions(
        dls.data.frame["ImageID"][dls.is_valid].tolist(),
        dls.classes,
        calibrated.targets,
        calibrated.logits,
        calibrated.activation(calibrated.logits),
        calibrated=fitted.probs if fitted.calibrator is not None else None,
        predicted=fitted.probs >= fitted.thresholds,
    )
    writer.write_metrics(report, dataclasses.asdict(selection))
    writer.write_calibration(calibration_record(specs, fitted))


def calibration_record(specs: RunSpecs, fitted: Any) -> dict[str, Any]:
    """What prediction reloads: the calibrator and thresholds fitted on all validation images."""
    calibrator = fitted.calibrator
    return {
        "fitted_on": "every validation image (the reported metrics use patient-grouped halves, "
        "each scored by what the other half fitted)",
        "calibrator": None
        if calibrator is None
        else {"spec": str(specs.calibrator.spec), "state": calibrator.state()},
        "thresholds": {
            "spec": str(specs.thresholds.spec),
            "state": fitted.threshold_policy.state(),
        },
    }


def write_submission(
    writer: RunWriter,
    specs: RunSpecs,
    data: RunData,
    model: Any,
    bs: int,
    calibrated: Calibrated,
    console: Console,
) -> None:
    """The challenge file for the test images in the data set's declared format, validated
    before it is written."""
    from cxrlt.prediction import predict_logits

    device = next(model.parameters()).device
    logits = predict_logits(model, data.test_images, bs, device)
    probs = calibrated.probabilities(logits, data.dls.data.test)
    ids = data.dls.data.test["ImageID"]
    path, fmt = writer.run_dir.write_submission(specs.dataset.entry, ids, probs, data.dls.classes)
    console.print(f"Submission for {len(ids)} test images ({fmt.name} format): {path}")


def start_tracking(writer: RunWriter, options: RunOptions, specs: RunSpecs) -> Tracking:
    """The trackers of ``--log`` started on this run, before its data is read: its options
    and resolved specs as parameters, its place in a sweep as tags. None on a process that
    does not write the run."""
    from cxrlt.sweep import cell_tags
    from cxrlt.training.tracking import TrackedRun, Tracking

    if not writer.active or not specs.loggers:
        return Tracking()
    params = {
        name: "" if value is None else str(value)
        for name, value in dataclasses.asdict(options).items()
    }
    params |= {f"spec.{role}": str(part.spec) for role, part in specs.by_role().items()}
    params |= {f"spec.post.{i}": str(step.spec) for i, step in enumerate(specs.post, 1)}
    run = TrackedRun(writer.path.name, writer.path, params, cell_tags(writer.path))
    return Tracking.start({str(spec.spec): spec.build() for spec in specs.loggers}, run)


def finish_tracking(tracking: Tracking, run_dir: RunDir) -> None:
    """The trackers told the run's final metrics (metrics.json's, intervals as low and high),
    once every file is written."""
    from cxrlt.training.tracking import final_metrics

    if tracking.trackers:
        tracking.finish(final_metrics(run_dir.read_metrics()))
