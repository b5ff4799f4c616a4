"""The training stage of a run: the one-cycle schedule with checkpoints (or its resumption),
and the trained model's weights written, per role, before anything after training can fail."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from cxrlt.errors import CxrltError
from cxrlt.evaluation.selection import KEPT, ROLES, role_half

if TYPE_CHECKING:
    from cxrlt.options import RunOptions
    from cxrlt.outputs.run_dir import RunDir
    from cxrlt.outputs.run_schema import RunConfig, TrainingRecord
    from cxrlt.workflows.data import RunData
    from cxrlt.workflows.specs import RunSpecs
    from cxrlt.workflows.write import RunWriter


@dataclass(frozen=True)
class Trained:
    """A trained model and where each role's model starts from: ``state_of(starts[role])``
    gives its weights, unless the start is ``epochs_done`` (the model as it is).
    ``checkpointer`` is None when the model comes from another run (``--from-run``)."""

    learn: Any
    starts: dict[str, Any]
    state_of: Callable[[Any], dict]
    training: TrainingRecord  # config.json's record of it
    epochs_done: int | None = None
    checkpointer: Any = None


def train(
    options: RunOptions,
    specs: RunSpecs,
    data: RunData,
    device: Any,
    writer: RunWriter,
    resume_state: dict | None,
    trackers: Sequence[Any] = (),
) -> Trained:
    """Train (or finish training) the run's model, ``trackers`` recording each epoch; the last
    epoch's weights are written when ``--select`` keeps another epoch's."""
    from cxrlt.outputs.run_dir import LAST_WEIGHTS

    learn, epochs = train_and_checkpoint(
        options,
        specs,
        data,
        device,
        writer.path,
        resume_state,
        write=writer.active,
        trackers=trackers,
    )
    starts = epoch_starts(options.select, epochs)
    if starts[KEPT] != epochs.epochs_done:
        writer.write_weights(learn.model, LAST_WEIGHTS)  # the last epoch's first
    return Trained(
        learn,
        starts,
        epochs.epoch_state,
        training_record(options, epochs),
        epochs.epochs_done,
        epochs,
    )


def mark_trained(
    options: RunOptions, trained: Trained, writer: RunWriter, config: RunConfig
) -> None:
    """Write the trained models (per role, as ``--select`` chose) and mark the run trained
    (``config`` with no post steps, and the training record), before post-training, calibration,
    evaluation or the submission can fail: ``--resume`` and ``--from-run`` then go on from
    these weights without training again. A chosen epoch's weights are written from its saved
    state, with no copy of the model."""
    starts = trained.starts
    files = role_files(starts)
    for name, role in {name: role for role, name in files.items()}.items():
        if starts[role] == trained.epochs_done:
            writer.write_weights(trained.learn.model, name)
        else:
            writer.write_state(trained.state_of(starts[role]), name)
    from cxrlt.outputs.run_schema import TRAINED, SelectionRecord

    selection = SelectionRecord(protocol=options.select, starts=starts, weights=files)
    writer.write_config(
        config.replace(status=TRAINED, post=(), training=trained.training, selection=selection)
    )


def role_files(keys: dict[str, Any]) -> dict[str, str]:
    """Per role, the weights file of its model: the kept model's in model.safetensors, a
    half's own (chosen on the other half) in model-<half>.safetensors when it differs."""
    from cxrlt.outputs.run_dir import WEIGHTS

    return {
        role: WEIGHTS
        if role == KEPT or keys[role] == keys[KEPT]
        else WEIGHTS.replace("model", f"model-{role}")
        for role in ROLES
    }


def epoch_starts(select: str, epochs: Any) -> dict[str, int]:
    """Per role, the epoch (from 1) its model starts from, as ``select`` chooses."""
    from cxrlt.evaluation.selection import epoch_score

    starts = {}
    for role in ROLES:
        score = epoch_score(select, role_half(role))
        best = epochs.best.get(score) if score else None
        starts[role] = best["epoch"] if best else epochs.epochs_done
    return starts


def training_record(options: RunOptions, epochs: Any) -> TrainingRecord:
    """The epochs trained and the best by each validation score, for the config."""
    from cxrlt.outputs.run_schema import TrainingRecord

    return TrainingRecord(
        epochs_done=epochs.epochs_done,
        best_epoch=epochs.best_epoch,
        best_valid_mAP=epochs.best_score,
        best_by_score=epochs.best,
        kept_epoch=epoch_starts(options.select, epochs)[KEPT],
    )


def load_resume_state(run_dir: RunDir, console: Console, options: RunOptions) -> dict | None:
    """The checkpoint to continue from; None when the run stopped before its first epoch
    ended (it then starts training afresh in its own folder) or never trains (--from-run)."""
    from cxrlt.outputs.run_dir import CHECKPOINT, METRICS
    from cxrlt.training.checkpoint import load_checkpoint

    run_dir.read_config()  # a folder that holds no run is refused, naming it
    if not run_dir.file(CHECKPOINT).exists():
        if run_dir.file(METRICS).exists():
            raise CxrltError(
                f"{run_dir.path} is a complete run: there is nothing to resume. Train it again "
                f"with --out {run_dir.path} --overwrite, or post-train its model differently "
                f"with --from-run {run_dir.path} --post STEPS --out NEW_FOLDER."
            )
        if options.from_run:
            console.print(f"Post-training the model of {options.from_run} again.")
        else:
            console.print(f"{run_dir.path} stopped before its first epoch ended: training afresh.")
        return None
    state = load_checkpoint(run_dir.file(CHECKPOINT))
    if state["n_epoch"] != options.epochs:
        raise CxrltError(
            f"The checkpoint in {run_dir.path} belongs to a {state['n_epoch']}-epoch run, its "
            f"config.json says {options.epochs} epochs: the folder was altered. Start the run "
            "again with --overwrite."
        )
    return state


def train_and_checkpoint(
    options: RunOptions,
    specs: RunSpecs,
    data: RunData,
    device: Any,
    path: Path,
    resume_state: dict | None,
    *,
    write: bool,
    trackers: Sequence[Any] = (),
) -> tuple[Any, Any]:
    """Fit the one-cycle schedule with checkpoints in ``path`` (written when ``write``, as
    are the ``trackers``' records), keeping the best weights by the mAP of the whole
    validation split and of each of its halves; returns the learner and the checkpointer."""
    from cxrlt.outputs.run_dir import CHECKPOINT, LOG
    from cxrlt.training import distributed
    from cxrlt.training.checkpoint import EpochCheckpoint
    from cxrlt.training.guards import NonFiniteLoss, StopOnNonFiniteLoss
    from cxrlt.training.learner import cxr_learner
    from cxrlt.training.run_log import RunLog
    from cxrlt.training.selection import HalfScores

    scores = HalfScores(data.halves)
    epochs = EpochCheckpoint(
        path / CHECKPOINT, resume=resume_state, write=write, scores=scores.latest
    )
    keep = resume_state["epochs_done"] if resume_state else None
    callbacks = [StopOnNonFiniteLoss(), scores, epochs, *step_callbacks(options, device)]
    if write:
        callbacks += [RunLog(LOG, keep_epochs=keep), *trackers]
    learn = cxr_learner(data.dls, specs.arch, specs.loss, head=specs.head, path=path, cbs=callbacks)
    lr = slice(options.backbone_lr, options.lr) if options.backbone_lr else options.lr
    try:
        with distributed.distributed(learn, device):
            learn.fit_one_cycle(options.epochs, lr)
    except KeyboardInterrupt:
        epochs.wait()  # the last finished epoch's checkpoint, being written, is kept whole
        raise
    except NonFiniteLoss as error:
        kept = (
            f" The checkpoint after epoch {epochs.epochs_done} is kept in {path}."
            if epochs.epochs_done and write
            else ""
        )
        raise NonFiniteLoss(f"{error}{kept}") from None
    return learn, epochs


def step_callbacks(options: RunOptions, device: Any) -> list:
    """Mixed precision, channels-last, gradient clipping and weight averaging, as asked."""
    from fastai.callback.training import GradientClip  # clips after the fp16 unscale

    from cxrlt.training.averaging import WeightAveraging
    from cxrlt.training.precision import precision_callbacks

    callbacks = precision_callbacks(options.precision, options.channels_last, device)
    if options.grad_clip:
        callbacks.append(GradientClip(options.grad_clip))
    if options.ema:
        callbacks.append(WeightAveraging(options.ema))
    return callbacks
