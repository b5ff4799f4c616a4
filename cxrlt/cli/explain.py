"""``cxrlt explain``: per-class Grad-CAM overlays of a finished run's predictions on images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlt.cli import options
from cxrlt.cli.app import app, friendly_errors
from cxrlt.cli.output import Json, Quiet, command_console, print_json


@app.command()
@friendly_errors
def explain(
    run: Annotated[Path, typer.Argument(help="Folder of a finished run.")],
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image files, or folders searched recursively for PNG, JPEG and DICOM files."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the overlays and their index.")] = Path(
        "explanations"
    ),
    classes: Annotated[
        str | None,
        typer.Option(help="Explain these classes, comma-separated (default: each image's top-k)."),
    ] = None,
    top_k: Annotated[
        int, typer.Option(help="Without --classes: the most probable classes explained.")
    ] = 3,
    device: options.Device = "auto",
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Where the run's model found each class: a Grad-CAM heatmap over every image, one PNG per
    image and class, with explanations.csv listing image, class, probability and file."""
    from cxrlt.explain import INDEX, explain_images
    from cxrlt.workflows.setup import pick_device

    chosen = [name.strip() for name in classes.split(",")] if classes else None
    index = explain_images(
        run, images, out, classes=chosen, top_k=top_k, device=pick_device(device)
    )
    console = command_console(json=json, quiet=quiet)
    console.print(
        f"{len(index)} overlays of {index['image'].nunique()} images written to "
        f"[bold]{out}[/bold] (index: {INDEX})",
        highlight=False,
    )
    if json:
        print_json({"run": run, "out": out, "explanations": index.to_dict(orient="records")})
