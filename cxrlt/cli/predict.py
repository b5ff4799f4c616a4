"""``cxrlt predict``: a finished run's challenge submission for a data set's test images, or
its predictions for new images (a folder or files, no CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.errors import CxrltError

_OUT = {False: Path("submission.csv"), True: Path("predictions.csv")}  # by --images given


@app.command()
@friendly_errors
def predict(
    run: Annotated[Path, typer.Argument(help="Folder of a finished run or ensemble.")],
    images: Annotated[
        list[Path] | None,
        typer.Option(
            help="New images instead of a data set: a folder (searched recursively for PNG, "
            "JPEG and DICOM files) or an image file; repeat it for several."
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Data set of the test images (default: the run's).")
    ] = None,
    data: options.DataFolder = None,
    split: Annotated[str, typer.Option(help="Which images: 'test' (the challenge's).")] = "test",
    skip_bad: Annotated[
        bool,
        typer.Option(
            help="With --images: leave out images that cannot be decoded (their rows keep the "
            "reason, in 'problem') instead of stopping."
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The output file (default: submission.csv, with --images predictions.csv)."
        ),
    ] = None,
    bs: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Predict with the run's model, post-training steps, calibrator and threshold policy: the
    test images of a data set, as a validated submission; or new images (--images), as one row
    per image with each class's probability and 0/1 prediction."""
    from cxrlt.outputs.run_dir import check_output_file
    from cxrlt.workflows.setup import pick_device

    if split != "test":
        raise CxrltError(
            f"--split {split!r}: only 'test' is predicted here; the validation split's "
            "predictions are already in the run's valid_predictions.csv."
        )
    if images and (dataset is not None or data is not None):
        raise CxrltError(
            "--images predicts the given images, --dataset and --data a data set's test "
            "images: give one or the other."
        )
    if skip_bad and not images:
        raise CxrltError(
            "--skip-bad applies to --images only: a submission must predict every test image "
            "(fix or replace the unreadable ones)."
        )
    if bs < 1:
        raise CxrltError(f"--bs must be at least 1, got {bs}.")
    out = out or _OUT[bool(images)]
    check_output_file(out)
    if images:
        _predict_images(run, images, out, skip_bad=skip_bad, bs=bs, device=pick_device(device))
        return
    from cxrlt.prediction import predict_submission

    path = predict_submission(
        run, out, dataset=dataset, data=data, bs=bs, device=pick_device(device)
    )
    console.print(f"Submission written to [bold]{path}[/bold]")


def _predict_images(
    run: Path, images: list[Path], out: Path, *, skip_bad: bool, bs: int, device: Any
) -> None:
    """Predict new images into ``out``, saying what was left out (other files, bad images)."""
    from cxrlt.data.problems import SHOWN
    from cxrlt.io import write_with
    from cxrlt.prediction import PROBLEM_COLUMN, find_images, load_run

    found = find_images(images)
    frame = load_run(run, device).predict(found, bs=bs, skip_bad=skip_bad)
    write_with(out, frame.to_csv)
    problems = frame[PROBLEM_COLUMN].dropna()
    console.print(
        f"Predictions for {len(frame) - len(problems)} images written to [bold]{out}[/bold]",
        highlight=False,
    )
    if found.ignored:
        console.print(
            f"Note: {found.ignored} other files in the folders were left out (not PNG, JPEG "
            "or DICOM by their name).",
            highlight=False,
        )
    if len(problems):
        listed = ", ".join(f"{name} ({why})" for name, why in problems[:SHOWN].items())
        more = f", and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        console.print(
            f"Skipped {len(problems)} of {len(frame)} images that cannot be decoded (their "
            f"rows have no values and the reason in '{PROBLEM_COLUMN}'): {listed}{more}.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
