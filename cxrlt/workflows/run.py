"""``cxrlt run``: the stages in order, and what a stop at each leaves behind.

Set-up (:mod:`~cxrlt.workflows.setup`), data (:mod:`~cxrlt.workflows.data`), training or the
trained model of ``--from-run`` (:mod:`~cxrlt.workflows.training`,
:mod:`~cxrlt.workflows.from_run`), post-training (:mod:`~cxrlt.workflows.post_training`),
calibration, evaluation and writing. Under ``torchrun``/``accelerate launch`` every process
runs every stage up to post-training; this module alone lets the first go on to evaluate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from cxrlt.errors import CxrltError, CxrltInterrupted
from cxrlt.workflows.advice import interrupted_advice, late_failure_advice
from cxrlt.workflows.calibrate import calibrate
from cxrlt.workflows.data import RunData, load_data
from cxrlt.workflows.evaluate import evaluate_run
from cxrlt.workflows.from_run import load_trained, read_base_run
from cxrlt.workflows.post_training import (
    Branch,
    build_branches,
    predict_branches,
    selection_record,
    weights_files,
)
from cxrlt.workflows.setup import Setup, seed_run, set_up
from cxrlt.workflows.training import Trained, load_resume_state, mark_trained, train
from cxrlt.workflows.write import (
    finish_tracking,
    run_config,
    start_tracking,
    write_results,
    write_submission,
)

if TYPE_CHECKING:
    from cxrlt.evaluation.metrics import Report
    from cxrlt.options import RunOptions
    from cxrlt.outputs.run_schema import SelectionRecord
    from cxrlt.training.tracking import Tracking


def run(
    options: RunOptions, console: Console | None = None, *, resume: bool = False
) -> tuple[Any, Any]:
    """Train and evaluate as ``options`` say; returns the run directory and the metric report
    (None on processes other than the first).

    With ``resume`` the run in ``options.out`` continues from its last checkpoint. Ctrl-C
    stops with the command that continues the run (:class:`CxrltInterrupted`).
    """
    setup = set_up(options, console or Console(), resume=resume)
    try:
        return _run(options, setup, resume=resume)
    except KeyboardInterrupt:
        ours = resume or setup.writer.run_dir.started  # else it may hold what --overwrite keeps
        advice = interrupted_advice(setup.writer.path, options, ours=ours)
        raise CxrltInterrupted(advice) from None


def _run(options: RunOptions, setup: Setup, *, resume: bool) -> tuple[Any, Any]:
    """The stages, recorded by the ``--log`` trackers, which are told how the run ended."""
    from cxrlt.training.tracking import FAILED, KILLED

    tracking = start_tracking(setup.writer, options, setup.specs)
    try:
        run_dir, report = _stages(options, setup, tracking, resume=resume)
    except BaseException as error:
        tracking.finish({}, KILLED if isinstance(error, KeyboardInterrupt) else FAILED)
        raise
    finish_tracking(tracking, run_dir)
    return run_dir, report


def _stages(
    options: RunOptions, setup: Setup, tracking: Tracking, *, resume: bool
) -> tuple[Any, Any]:
    from cxrlt.outputs.report import print_data_summary
    from cxrlt.outputs.run_schema import COMPLETE, TRAINING, DistributedRecord
    from cxrlt.training import distributed

    specs, device, writer, console = setup.specs, setup.device, setup.writer, setup.console
    if specs.head_note:
        console.print(specs.head_note, markup=False)
    checkpoint = load_resume_state(writer.run_dir, console, options) if resume else None
    base = read_base_run(options.from_run) if options.from_run else None
    seed_run(options.seed, device)
    data = load_data(options, specs, device)
    print_data_summary(console, data.dls)
    # a base run's weights are loaded before anything is written: a bad file stops here
    trained = load_trained(options, specs, data, device, writer.path, base) if base else None
    every_post = [*(base.post if base else []), *specs.post]  # what the saved model went through
    if not resume:
        writer.start()  # what --overwrite replaces goes only now, every check passed
    config = run_config(options, specs, every_post, data.dls, device, status=TRAINING)
    writer.write_config(config)
    writer.write_data(data)
    if trained is None:
        trained = train(options, specs, data, device, writer, checkpoint, tracking.trackers)
        if writer.active:  # the others have no epoch states to write from
            mark_trained(options, trained, writer, config)
    else:
        console.print(f"Starting from the trained model of {options.from_run} (no training).")
    learn = trained.learn
    try:
        if specs.post:
            console.print(f"Post-training: {', '.join(str(step.spec) for step in specs.post)}")
        branches = build_branches(
            options.select,
            learn,
            specs.post,
            trained.starts,
            trained.state_of,
            data.halves,
            device,
            last=trained.epochs_done,
        )
        checksums = distributed.gather_checksums(learn.model)
        if not writer.active:
            distributed.wait_for_every_rank_to_finish()
            distributed.cleanup()
            return writer.run_dir, None
        report, selection = _report(options, setup, data, trained, branches)
        if specs.post or base is not None:  # else the trained weights, written already, are these
            for name, model in weights_files(branches).items():
                writer.write_weights(model, name)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - every late failure keeps the trained model
        advice = late_failure_advice(error, writer.path, options, trained=base is None)
        raise CxrltError(advice) from error
    if len(checksums) > 1:  # every rank's weights, to show they agree
        agreement = DistributedRecord(world_size=len(checksums), weights_checksums=tuple(checksums))
    else:
        agreement = None
    writer.write_config(
        config.replace(
            status=COMPLETE,
            training=trained.training,
            selection=selection,
            distributed=agreement,
        )
    )
    if trained.checkpointer is not None:
        trained.checkpointer.remove_files()
    distributed.wait_for_every_rank_to_finish()
    distributed.cleanup()
    console.print(f"Run written to [bold]{writer.path}[/bold]")
    return writer.run_dir, report


def _report(
    options: RunOptions,
    setup: Setup,
    data: RunData,
    trained: Trained,
    branches: dict[str, Branch],
) -> tuple[Report, SelectionRecord]:
    """On the first process alone, once the others wait: the branches' validation logits,
    calibrated, evaluated and written, and the submission when there are test images."""
    from cxrlt.outputs.report import print_report

    learn, console = trained.learn, setup.console
    predict_branches(learn, branches)
    selection = selection_record(options.select, branches, trained=trained.checkpointer is not None)
    calibrated = calibrate(setup.specs, learn.loss_func, data, branches)
    report = evaluate_run(calibrated, data)
    write_results(setup.writer, setup.specs, data, calibrated, report, selection)
    print_report(console, report, data.dls.class_counts)
    console.print(selection.description)
    if data.test_images is not None:
        write_submission(
            setup.writer, setup.specs, data, learn.model, options.bs, calibrated, console
        )
    return report, selection
