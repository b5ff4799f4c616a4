"""``cxrlt zero-shot``: an image-text model scores classes it was never trained on, named by
prompts: a challenge submission for a data set's test images (CXR-LT 2026 Task 2), or scores
on its labelled validation split to judge a model and prompt set first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors

if TYPE_CHECKING:
    from cxrlt.evaluation.metrics import Report

# The validation split of `cxrlt run`, declared with the run options.
ValidFrac = options.annotated("valid_frac")
Seed = options.annotated("seed")
_OUT = {"test": Path("zero_shot_submission.csv"), "valid": Path("zero_shot_scores.csv")}


@app.command("zero-shot")
@friendly_errors
def zero_shot(
    model: Annotated[
        str,
        typer.Option(
            help="Image-text model (see `cxrlt list image_text_models`): whyxrayclip, "
            "biomedclip, any OpenCLIP name with :pretrained=TAG or =FILE, hf-hub:ORG/REPO, or "
            "local-dir:FOLDER."
        ),
    ],
    dataset: Annotated[
        str, typer.Option(help="Data set (see `cxrlt list datasets`).")
    ] = "cxr-lt-2026",
    data: options.DataFolder = None,
    split: Annotated[
        str,
        typer.Option(
            help="test: write the test images' submission; valid: score the labelled "
            "validation split (the one `cxrlt run` holds out with the same --seed)."
        ),
    ] = "test",
    classes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated classes (default: the data set's zero-shot classes for "
            "test, its labelled classes for valid)."
        ),
    ] = None,
    prompts: Annotated[
        Path | None,
        typer.Option(help="TOML prompt set (default: the built-in CXR-LT 2026 one)."),
    ] = None,
    ensemble: Annotated[
        str,
        typer.Option(
            help="embedding: one mean prompt embedding per class; score: the mean of the "
            "per-prompt similarities."
        ),
    ] = "embedding",
    probability: Annotated[
        str,
        typer.Option(
            help="sigmoid: sigmoid(scale x (cosine - shift)); softmax: the class's prompts "
            "against its negative prompts."
        ),
    ] = "sigmoid",
    scale: Annotated[
        float | None,
        typer.Option(help="Similarity scale (default: 5 for sigmoid, the model's for softmax)."),
    ] = None,
    shift: Annotated[float, typer.Option(help="Cosine subtracted before the sigmoid.")] = 0.0,
    valid_frac: ValidFrac = 0.2,
    seed: Seed = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output CSV (default: zero_shot_submission.csv for test, "
            "zero_shot_scores.csv, per-class metrics, for valid)."
        ),
    ] = None,
    bs: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    device: options.Device = "auto",
) -> None:
    """Zero-shot classification with an image-text model: no training, each class named by
    prompts. Every name, file and class is checked before any image is decoded."""
    from cxrlt.errors import CxrltError
    from cxrlt.outputs.run_dir import check_output_file
    from cxrlt.workflows.setup import pick_device
    from cxrlt.zero_shot.scoring import Scoring
    from cxrlt.zero_shot.workflow import (
        evaluate_zero_shot,
        plan_zero_shot,
        write_zero_shot_submission,
    )

    if bs < 1:
        raise CxrltError(f"--bs must be at least 1, got {bs}.")
    named = [name.strip() for name in classes.split(",") if name.strip()] if classes else None
    out = out or _OUT.get(split, _OUT["test"])
    check_output_file(out)
    scoring = Scoring(ensemble, probability, scale, shift)
    plan = plan_zero_shot(
        model=model,
        dataset=dataset,
        data_path=data,
        split=split,
        classes=named,
        prompts=prompts,
        scoring=scoring,
    )
    where = pick_device(device)
    if plan.split == "test":
        path = write_zero_shot_submission(plan, out, bs=bs, device=where)
        console.print(
            f"{plan.submission.name} submission of {len(plan.data.test)} images written to "
            f"[bold]{path}[/bold]",
            highlight=False,
        )
        return
    _report(evaluate_zero_shot(plan, valid_frac=valid_frac, seed=seed, bs=bs, device=where), out)


def _report(report: Report, out: Path) -> None:
    """Print the overall scores with their patient-bootstrap intervals; write the per-class
    table."""
    from cxrlt.io import write_with
    from cxrlt.outputs.run_schema import per_class_table

    write_with(out, lambda file: per_class_table(report).to_csv(file, float_format="%.6g"))
    overall, intervals = report.overall, report.intervals
    for name in ("mAP", "mAUC", "mF1", "ECE"):
        low, high = intervals.overall[name] if intervals else (float("nan"), float("nan"))
        console.print(f"{name}: {overall[name]:.4f} [{low:.4f}, {high:.4f}]", highlight=False)
    console.print(
        f"mAP chance level {overall['mAP_chance']:.4f}; {overall['n_images']} validation images, "
        f"{overall['n_classes_scored']} classes with positives. Per class: [bold]{out}[/bold]",
        highlight=False,
    )
    if intervals:
        console.print(intervals.describe(), highlight=False)
