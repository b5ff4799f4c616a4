"""``cxrlt predict``: a finished run's challenge submission for a data set's test images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.errors import CxrltError


@app.command()
@friendly_errors
def predict(
    run: Annotated[Path, typer.Argument(help="Folder of a finished run.")],
    dataset: Annotated[
        str | None, typer.Option(help="Data set of the test images (default: the run's).")
    ] = None,
    data: options.DataFolder = None,
    split: Annotated[str, typer.Option(help="Which images: 'test' (the challenge's).")] = "test",
    out: Annotated[Path, typer.Option(help="The submission file.")] = Path("submission.csv"),
    bs: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Predict the test images with the run's model, post-training steps and calibrator, and
    write a validated submission."""
    from cxrlt.outputs.run_dir import check_output_file
    from cxrlt.pipeline import pick_device
    from cxrlt.prediction import predict_submission

    if split != "test":
        raise CxrltError(
            f"--split {split!r}: only 'test' is predicted here; the validation split's "
            "predictions are already in the run's valid_predictions.csv."
        )
    if bs < 1:
        raise CxrltError(f"--bs must be at least 1, got {bs}.")
    check_output_file(out)
    path = predict_submission(
        run, out, dataset=dataset, data=data, bs=bs, device=pick_device(device)
    )
    console.print(f"Submission written to [bold]{path}[/bold]")
