"""The post-training stage of a run: per role, its model (the weights chosen on the other
validation half) with the ``--post`` steps applied, and each distinct model's validation
logits, through the steps that act on predictions (merging a study's views)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cxrlt.evaluation.selection import KEPT, ROLES, role_half
from cxrlt.registry import Resolved
from cxrlt.workflows.training import role_files


@dataclass
class Branch:
    """A model the run builds after training, and its validation logits (rank 0 only)."""

    start: Any  # where its weights came from: an epoch, or a base run's weights file
    model: Any
    choices: list = dataclasses.field(default_factory=list)  # what its post steps chose
    steps: list = dataclasses.field(default_factory=list)  # every post step its model went through
    logits: Any = None  # (validation images, classes), once predicted


def build_branches(
    select: str,
    learn: Any,
    post: tuple[Resolved, ...] | list[Resolved],
    starts: dict[str, Any],
    state_of: Any,
    halves: Any,
    device: Any,
    *,
    last: int | None,
) -> dict[str, Branch]:
    """Per role, its model: the weights ``state_of(starts[role])`` (the model as it is for the
    ``last`` epoch) with ``post`` applied.

    The models reporting each half start from the weights chosen on the other half, and
    post steps that choose by a validation score choose on the other half too; the kept model
    chooses on every image. Roles that would build the same model share it, so a run whose
    choices agree (or ``--select last`` without such steps) builds one. Every rank builds
    alike (post steps that train do so data-parallel), from the weights rank 0 loads.
    ``learn.model`` ends as the kept model.
    """
    import copy

    import cxrlt.post  # noqa: F401 - adds Learner.post
    from cxrlt.evaluation.selection import choice_rows
    from cxrlt.training import distributed

    chooses = any(getattr(step.build(), "chooses_on_validation", False) for step in post)
    rows = {role: choice_rows(select, halves, role_half(role)) for role in ROLES}
    keys = {role: (starts[role], rows[role].tobytes() if chooses else None) for role in ROLES}
    template, steps_before = learn.model, list(getattr(learn, "post_steps", []))
    built: dict[Any, Branch] = {}
    for role in ROLES:
        if keys[role] in built:
            continue
        model = copy.deepcopy(template)
        if distributed.is_main_process() and starts[role] != last:
            model.load_state_dict(state_of(starts[role]))
        learn.model, learn.post_steps = model.to(device), list(steps_before)
        learn.post_choices = []
        distributed.broadcast_weights(learn.model)
        if post:  # every rank: steps that train do so data-parallel, from rank 0's weights
            learn.choice_rows = rows[role]
            with distributed.distributed(learn, device):
                learn.post(list(post))
            del learn.choice_rows
        steps = list(getattr(learn, "post_steps", []))
        built[keys[role]] = Branch(starts[role], learn.model, learn.post_choices, steps)
    branches = {role: built[keys[role]] for role in ROLES}
    learn.model = branches[KEPT].model
    return branches


def predict_branches(learn: Any, branches: dict[str, Branch]) -> None:
    """Each distinct model's validation logits, on this rank alone (rank 0, after the others
    have finished their collectives), through its steps that act on predictions."""
    from cxrlt.post.study_views import apply_to_predictions
    from cxrlt.training.distributed import rank_local

    kept, dls = learn.model, learn.dls
    for branch in {id(b): b for b in branches.values()}.values():
        learn.model = branch.model
        with rank_local(learn):  # no gathering from the others
            logits, _ = learn.get_preds(ds_idx=1, act=lambda x: x)
        images = dls.data.frame[dls.is_valid]
        branch.logits = apply_to_predictions(branch.steps, logits.float().numpy(), images)
    learn.model = kept


def weights_files(branches: dict[str, Branch]) -> dict[str, Any]:
    """The file of each distinct model (:func:`role_files`) and the model."""
    return {name: branches[role].model for role, name in branch_files(branches).items()}


def branch_files(branches: dict[str, Branch]) -> dict[str, str]:
    return role_files({role: id(branches[role].model) for role in ROLES})


def selection_record(select: str, branches: dict[str, Branch], *, trained: bool) -> Any:
    """How the reported figures were chosen, for config.json, metrics.json and the console;
    ``trained``: the run trained its model (else its epochs are another run's)."""
    from cxrlt.evaluation.selection import describe
    from cxrlt.outputs.run_schema import SelectionRecord

    starts = {role: branches[role].start for role in ROLES}
    return SelectionRecord(
        protocol=select,
        starts=starts,
        weights=branch_files(branches),
        post_choices={role: branches[role].choices for role in ROLES},
        description=describe(select, starts if trained else {}),
    )
