"""Options that several commands share, spelled and explained once."""

from __future__ import annotations

from typing import Annotated

import typer

Dataset = Annotated[str, typer.Option(help="Data set name (see `cxrlt list datasets`).")]
DataFolder = Annotated[str | None, typer.Option(help="Folder of the data set on disk.")]
Size = Annotated[int, typer.Option(help="Training image size in pixels.")]
Letterbox = Annotated[
    bool, typer.Option(help="Keep the aspect ratio and pad, instead of stretching.")
]
Head = Annotated[
    str | None,
    typer.Option(help="Classifier head (default: the one the loss declares, else linear)."),
]
Sampler = Annotated[str, typer.Option(help="Training sampler.")]
Epochs = Annotated[int, typer.Option(help="Training epochs.")]
BatchSize = Annotated[int, typer.Option(help="Batch size.")]
LearningRate = Annotated[float, typer.Option(help="Peak learning rate (one-cycle).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
