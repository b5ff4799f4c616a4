"""The zero-shot command's work: every name, file and class checked first, then the images
decoded and scored, as a challenge submission (test images) or a scored report (the
labelled validation split, to judge a model and prompt set before submitting)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cxrlt.data.problems import check
from cxrlt.data.table import ID_COLUMN, PATH_COLUMN, LabelledImages
from cxrlt.errors import CxrltError
from cxrlt.evaluation.metrics import Report, evaluate
from cxrlt.registry import Resolved, SubmissionFormat, resolve
from cxrlt.zero_shot.model import ImageTextModel
from cxrlt.zero_shot.prompts import ClassPrompts, load_prompt_set
from cxrlt.zero_shot.scoring import Scoring, ZeroShotScores, score_images

Split = Literal["test", "valid"]
_NOTHING_SCORED = "Nothing was scored"


@dataclass(frozen=True)
class ZeroShotPlan:
    """What a zero-shot command scores, checked: the model and data set specs, the data set's
    tables (no image decoded yet), the classes, their prompts and the scoring rule."""

    model: Resolved
    dataset: Resolved
    data: LabelledImages
    split: Split
    classes: tuple[str, ...]
    prompts: list[ClassPrompts]
    scoring: Scoring
    submission: SubmissionFormat | None  # the file the test split is written as


def _classes(named: Sequence[str] | None, data: LabelledImages, split: Split) -> tuple[str, ...]:
    if split == "test":
        if named:
            return tuple(named)
        if not data.zero_shot_classes:
            raise CxrltError(
                f"The data set {data.name!r} declares no zero-shot classes: name the classes "
                "to predict with --classes A,B,..."
            )
        return data.zero_shot_classes
    classes = tuple(named) if named else data.classes
    unlabelled = [name for name in classes if name not in data.classes]
    if unlabelled:
        raise CxrltError(
            f"--split valid scores labelled classes, and {data.name!r} has no labels for "
            f"{', '.join(map(repr, unlabelled))}. Its classes: {', '.join(data.classes)}."
        )
    return classes


def plan_zero_shot(
    *,
    model: str,
    dataset: str,
    data_path: str | None = None,
    split: Split = "test",
    classes: Sequence[str] | None = None,
    prompts: Path | str | None = None,
    scoring: Scoring | None = None,
) -> ZeroShotPlan:
    """Check every name, file and class before any image is decoded or model loaded
    (``scoring`` None: the default :class:`Scoring`)."""
    from cxrlt.outputs.submission import submission_for_dataset

    if split not in ("test", "valid"):
        raise CxrltError(f"--split {split!r}: use test (a submission) or valid (scores).")
    model_spec = resolve("image_text_models", model)
    dataset_spec = resolve("datasets", dataset)
    prompt_set = load_prompt_set(prompts)
    data: LabelledImages = dataset_spec.build(path=data_path)
    check(data.source, data.problems, data.image_ids, data.lines, skip=False)
    scoring = scoring or Scoring()
    chosen = _classes(classes, data, split)
    class_prompts = prompt_set.for_classes(chosen)
    scoring.check(chosen, class_prompts, prompt_set.source)
    submission = None
    if split == "test":
        if data.test is None or not len(data.test):
            raise CxrltError(
                f"The data set {data.name!r} has no test images: name its test list (e.g. "
                "--dataset cxr-lt-2026:test_csv=FILE), or score labelled images with --split "
                "valid."
            )
        submission = submission_for_dataset(dataset_spec.entry, chosen)
    return ZeroShotPlan(
        model_spec, dataset_spec, data, split, chosen, class_prompts, scoring, submission
    )


def load_model(plan: ZeroShotPlan, device: Any) -> ImageTextModel:
    """The plan's model on ``device``; a target that breaks the contract is named."""
    model = plan.model.build()
    if not isinstance(model, ImageTextModel):
        raise CxrltError(
            f"The image-text model '{plan.model.spec}' from plugin {plan.model.entry.plugin!r} "
            f"built a {type(model).__name__}, not a cxrlt.zero_shot.ImageTextModel."
        )
    return model.to(device)


def _score(
    plan: ZeroShotPlan, images: pd.DataFrame, part: str, *, bs: int, device: Any
) -> ZeroShotScores:
    from cxrlt.prediction import decode_test_images

    model = load_model(plan, device)
    pixels = decode_test_images(
        images, model.image_size, letterbox=False, part=part, consequence=_NOTHING_SCORED
    )
    return score_images(model, pixels, plan.prompts, plan.scoring, bs=bs)


def write_zero_shot_submission(
    plan: ZeroShotPlan, out: Path | str, *, bs: int = 64, device: Any = "cpu"
) -> Path:
    """Score the test images and write the data set's validated submission file."""
    from cxrlt.outputs.submission import build_submission, write_submission

    if plan.submission is None or plan.data.test is None:
        raise CxrltError("A submission is written from --split test only.")
    test = plan.data.test
    scores = _score(plan, test, "test", bs=bs, device=device)
    ids = test[ID_COLUMN].astype(str).tolist()
    frame = build_submission(plan.submission, ids, scores.probs, plan.classes)
    return write_submission(out, frame, plan.submission, ids)


def validation_rows(data: LabelledImages, *, valid_frac: float, seed: int) -> np.ndarray:
    """The rows of the validation split that ``cxrlt run`` with the same seed holds out."""
    from cxrlt.data.split import patient_split

    try:
        return np.flatnonzero(
            patient_split(data.patients, data.labels, valid_frac=valid_frac, seed=seed)
        )
    except ValueError as error:
        raise CxrltError(f"--valid-frac: {error}.") from None


def evaluate_zero_shot(
    plan: ZeroShotPlan,
    *,
    valid_frac: float = 0.2,
    seed: int = 0,
    bs: int = 64,
    device: Any = "cpu",
) -> Report:
    """Score the labelled validation split: cxrlt's metrics with patient-bootstrap intervals."""
    rows = validation_rows(plan.data, valid_frac=valid_frac, seed=seed)
    valid = plan.data.frame.iloc[rows].reset_index(drop=True)
    scores = _score(plan, valid[[ID_COLUMN, PATH_COLUMN]], "", bs=bs, device=device)
    targets = valid[list(plan.classes)].to_numpy(np.uint8)
    return evaluate(
        scores.probs,
        targets,
        plan.classes,
        scores=scores.logits,
        patients=plan.data.patients[rows],
    )
