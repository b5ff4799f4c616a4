"""Choices made by a score (the epoch, tau) never on the images whose metrics are reported.

A run reports its metrics on the validation split, the only labelled images it did not train
on. Choosing the epoch (or tau) by the score of those same images and then reporting that
score flatters it: on labels that carry no signal the best of a few noisy epochs sits above
chance. The validation split is therefore cut into two halves, grouped by patient and
stratified by label (:func:`cxrlt.data.split.validation_halves`); each half is reported with
what was chosen on the other half, and the two halves together give the reported figures
(cross-fitting). The same halves serve the calibrators and threshold policies.

What the run keeps for new images (its model for the test set, ``cxrlt predict``) is chosen
on the whole split: no reported figure depends on that choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads with the functions that use it: the CLI reads SELECTIONS
    import numpy as np

SELECTIONS = {
    "cross-fit": "the epoch, and what post-training steps choose (tau), are chosen on one "
    "validation half and reported on the other",
    "last": "the last epoch; what post-training steps choose (tau) is cross-fitted over the "
    "validation halves",
    "best": "the epoch with the best mAP on the whole validation split, reported on the same "
    "images: optimistic, kept to compare with earlier runs",
}
DEFAULT_SELECTION = "cross-fit"
WHOLE = "all"  # the score of every validation image
KEPT = "kept"  # the model kept for new images, chosen on the whole validation split
ROLES = ("half0", "half1", KEPT)  # the models that report each half, and the kept one


def half_name(half: int) -> str:
    return ROLES[half]


def role_half(role: str) -> int | None:
    """The half a role's model reports (None: the kept model)."""
    return None if role == KEPT else ROLES.index(role)


def half_scores(logits: np.ndarray, targets: np.ndarray, halves: np.ndarray) -> dict[str, float]:
    """Validation mAP of the whole split and of each half: what epochs are chosen by."""
    import numpy as np

    from cxrlt.evaluation.metrics import macro_average_precision

    scores = {WHOLE: macro_average_precision(logits, targets)}
    for half in np.unique(halves):
        rows = halves == half
        scores[half_name(int(half))] = macro_average_precision(logits[rows], targets[rows])
    return scores


def epoch_score(select: str, half: int | None) -> str | None:
    """The score that picks the epoch whose predictions report ``half`` (None: the model kept
    for new images); None as the result means the last epoch."""
    if select == "last":
        return None
    if select == "best" or half is None:
        return WHOLE
    return half_name(1 - half)


def choice_rows(select: str, halves: np.ndarray, half: int | None) -> np.ndarray:
    """The validation rows on which post-training steps may choose (tau) for the predictions
    that report ``half`` (None: the model kept for new images, chosen on every row)."""
    import numpy as np

    if half is None or select == "best":
        return np.ones(len(halves), bool)
    return np.asarray(halves) != half


def cross_fitted(logits_by_half: list[np.ndarray], halves: np.ndarray) -> np.ndarray:
    """The reported logits: each image's from the model that reports its half."""
    import numpy as np

    return np.choose(np.asarray(halves)[:, None], logits_by_half)


def describe(select: str, starts: dict[str, object]) -> str:
    """One sentence for metrics.json and the printed summary: how the figures were chosen."""
    text = f"Selection '{select}': {SELECTIONS[select]}"
    if not starts:
        return text + "."
    halves = ", ".join(f"{starts[half_name(h)]} for half {h}" for h in (0, 1))
    return f"{text} (epochs: {halves}; {starts[KEPT]} kept for new images)."
