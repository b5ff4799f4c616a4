"""The plugin's command, ``cxrlt my-command``. cxrlt imports this module when its CLI starts:
import only what is light here, the rest inside the function."""

from __future__ import annotations

from typing import Annotated

import typer


def count_labels(
    dataset: Annotated[str, typer.Option(help="A data set, as --dataset takes it.")] = "synthetic",
    data: Annotated[str | None, typer.Option(help="Its folder, as --data.")] = None,
) -> None:
    """Print how many images each class of a data set has, rarest first."""
    from cxrlt import resolve

    images = resolve("datasets", dataset).build(path=data)
    counts = images.frame[list(images.classes)].sum()
    typer.echo(f"{len(images)} images")
    for name, count in counts.sort_values(kind="stable").items():
        typer.echo(f"{name}: {count}")
