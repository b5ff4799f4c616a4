"""The load stage of a ``--from-run`` run: a finished run's trained model, to post-train
again on the same data and split, instead of training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlt.errors import CxrltError
from cxrlt.evaluation.selection import KEPT, ROLES
from cxrlt.registry import Resolved, resolve
from cxrlt.workflows.training import Trained, step_callbacks

if TYPE_CHECKING:
    from cxrlt.options import RunOptions
    from cxrlt.outputs.run_schema import RunConfig
    from cxrlt.workflows.data import RunData
    from cxrlt.workflows.specs import RunSpecs


@dataclass(frozen=True)
class BaseRun:
    """A finished run whose trained model a ``--from-run`` run post-trains again."""

    path: Path
    config: RunConfig
    post: list[Resolved]  # the steps its model already went through

    @property
    def weights(self) -> dict[str, str]:
        """Per role, the file of the model it used (runs before cross-fitting kept one)."""
        from cxrlt.outputs.run_dir import WEIGHTS

        saved = (self.config.selection and self.config.selection.weights) or {}
        return {role: saved.get(role, WEIGHTS) for role in ROLES}


def read_base_run(path: str) -> BaseRun:
    """The run ``--from-run`` names, its weights files checked before anything is written."""
    from cxrlt.outputs.run_dir import check_weights
    from cxrlt.prediction import complete_run, post_steps

    run_dir, config = complete_run(path, trained=True)
    base = BaseRun(run_dir.path, config, [resolve("post", step) for step in post_steps(config)])
    for name in set(base.weights.values()):
        check_weights(base.path / name)
    return base


def load_trained(
    options: RunOptions, specs: RunSpecs, data: RunData, device: Any, path: Path, base: BaseRun
) -> Trained:
    """The base run's model, as if this run had trained it; its split must be this run's."""
    from cxrlt.outputs.run_dir import read_weights
    from cxrlt.outputs.run_schema import TrainingRecord

    check_same_split(base, data.split)
    training = dataclasses.replace(
        base.config.training or TrainingRecord(), from_run=options.from_run
    )
    return Trained(
        trained_learner(options, specs, data.dls, device, path, base),
        starts={role: base.weights[role] for role in ROLES},
        state_of=lambda name: read_weights(base.path / name),
        training=training,
    )


def trained_learner(
    options: RunOptions, specs: RunSpecs, dls: Any, device: Any, path: Path, base: BaseRun
) -> Any:
    """A learner holding the base run's model (its post steps' structure, its weights), with
    the callbacks that shape a batch, ready for more post-training steps."""
    from cxrlt.outputs.run_dir import CONFIG, load_weights
    from cxrlt.post import rebuild
    from cxrlt.prediction import backbone_without_weights
    from cxrlt.training.guards import StopOnNonFiniteLoss
    from cxrlt.training.learner import cxr_learner

    saved = base.config.required("data", base.path / CONFIG)
    if list(saved.classes) != list(dls.classes) or saved.n_train != dls.n_train:
        raise CxrltError(
            f"The data set no longer matches the one {base.path} was trained on (its classes "
            f"or its {saved.n_train} training images differ): --from-run needs the same "
            "data; train a new run instead."
        )
    learn = cxr_learner(
        dls,
        backbone_without_weights(specs.arch),
        specs.loss,
        head=specs.head,
        path=path,
        cbs=[StopOnNonFiniteLoss(), *step_callbacks(options, device)],
    )
    learn.model = rebuild(learn.model, base.post, dls.classes)
    learn.post_steps = list(base.post)  # study-views acts on the predictions of these
    load_weights(learn.model, base.path / base.weights[KEPT])
    learn.model.to(device)
    return learn


def check_same_split(base: BaseRun, split: Any) -> None:
    """A ``--from-run`` run reports each validation half with models chosen on the other, so
    its split and halves must be the base run's: the same images on the same sides."""
    import numpy as np

    from cxrlt.outputs.run_dir import SPLIT, RunDir

    path = base.path / SPLIT
    saved = RunDir(base.path, check=False).read_split("--from-run needs the base run's split")
    columns = [c for c in ("ImageID", "split", "half") if saved is not None and c in saved]
    ours = split[columns].astype(object).where(split[columns].notna(), "").astype(str)
    if saved is None or not np.array_equal(ours.to_numpy(), saved[columns].to_numpy(str)):
        raise CxrltError(
            f"The training/validation split or its halves differ from {path} (or it is "
            "missing): the base run's models were chosen on other images, so --from-run "
            "cannot report on these. Use the base run's data, --valid-frac and --seed, or "
            "train a new run."
        )
